package test

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/functions/schema"
	"github.com/streamer-dev/streamer/functions/streamfilter"
)

func TestWebSocketAPI(t *testing.T) {
	defer failOnPanic(t)
	s := streamerStack(t)
	c := s.stack.Streamer
	s.template.ResourceCountIs(jsii.String("AWS::ApiGatewayV2::Api"), jsii.Number(1))
	s.template.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Api"), map[string]any{
		"ProtocolType": "WEBSOCKET",
	})
	routes := map[string]bool{}
	for _, r := range resources(t, s.template, "AWS::ApiGatewayV2::Route") {
		routes[props(r)["RouteKey"].(string)] = true
	}
	if want := map[string]bool{"$connect": true, "$disconnect": true, "$default": true}; !reflect.DeepEqual(routes, want) {
		t.Errorf("routes = %v, want %v", routes, want)
	}
	router := logicalID(s, c.RouterFunction)
	for id, integ := range resources(t, s.template, "AWS::ApiGatewayV2::Integration") {
		if got := render(props(integ)["IntegrationUri"]); !strings.Contains(got, "<"+router+".Arn>") {
			t.Errorf("integration %s targets %s, want the router", id, got)
		}
	}
	s.template.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Stage"), map[string]any{
		"StageName":  "prod",
		"AutoDeploy": true,
		"DefaultRouteSettings": map[string]any{
			"ThrottlingBurstLimit": 1000,
			"ThrottlingRateLimit":  500,
		},
		"AccessLogSettings": map[string]any{
			"DestinationArn": map[string]any{"Fn::GetAtt": []any{logicalID(s, c.AccessLogGroup), "Arn"}},
			"Format":         assertions.Match_StringLikeRegexp(jsii.String(`"requestId":"\$context.requestId"`)),
		},
	})
	for _, lg := range resources(t, s.template, "AWS::Logs::LogGroup") {
		if got := props(lg)["RetentionInDays"]; got != 30.0 {
			t.Errorf("log group retention = %v, want 30", got)
		}
		if lg["DeletionPolicy"] != "Retain" {
			t.Errorf("log group DeletionPolicy = %v, want Retain", lg["DeletionPolicy"])
		}
	}
	s.template.ResourceCountIs(jsii.String("AWS::Logs::LogGroup"), jsii.Number(3))
}

func TestTables(t *testing.T) {
	defer failOnPanic(t)
	s := streamerStack(t)
	c := s.stack.Streamer
	s.template.ResourceCountIs(jsii.String("AWS::DynamoDB::Table"), jsii.Number(3))
	ids := map[string]string{
		schema.Connections.ID:   logicalID(s, c.ConnectionsTable),
		schema.Requests.ID:      logicalID(s, c.RequestsTable),
		schema.Subscriptions.ID: logicalID(s, c.SubscriptionsTable),
	}
	tables := resources(t, s.template, "AWS::DynamoDB::Table")
	indexes := 0
	for _, def := range schema.Tables() {
		tbl, ok := tables[ids[def.ID]]
		if !ok {
			t.Fatalf("no table for %s", def.ID)
		}
		p := props(tbl)
		if tbl["DeletionPolicy"] != "Retain" || p["DeletionProtectionEnabled"] != true {
			t.Errorf("%s: DeletionPolicy %v, deletion protection %v; want Retain and on", def.ID, tbl["DeletionPolicy"], p["DeletionProtectionEnabled"])
		}
		s.template.HasResource(jsii.String("AWS::DynamoDB::Table"), map[string]any{
			"Properties": map[string]any{
				"KeySchema":                        []any{map[string]any{"AttributeName": def.PartitionKey.Name, "KeyType": "HASH"}},
				"BillingMode":                      "PAY_PER_REQUEST",
				"PointInTimeRecoverySpecification": map[string]any{"PointInTimeRecoveryEnabled": true},
				"SSESpecification":                 map[string]any{"SSEEnabled": true},
				"TimeToLiveSpecification":          map[string]any{"AttributeName": schema.AttrTTL, "Enabled": true},
			},
		})
		var got []string
		for _, gsi := range p["GlobalSecondaryIndexes"].([]any) {
			gsi := gsi.(map[string]any)
			got = append(got, render(gsi["IndexName"])+" "+render(gsi["KeySchema"])+" "+render(gsi["Projection"]))
		}
		var want []string
		for _, ix := range def.Indexes {
			keys := `{"AttributeName":"` + ix.PartitionKey.Name + `","KeyType":"HASH"}`
			if ix.SortKey != nil {
				keys += ` {"AttributeName":"` + ix.SortKey.Name + `","KeyType":"RANGE"}`
			}
			want = append(want, ix.Name+" "+keys+` {"ProjectionType":"ALL"}`)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s indexes:\n got %q\nwant %q", def.ID, got, want)
		}
		indexes += len(got)
		stream, hasStream := p["StreamSpecification"]
		if wantStream := def.Stream != schema.NoStream; hasStream != wantStream {
			t.Errorf("%s: stream %v, want %v", def.ID, stream, wantStream)
		}
	}
	if indexes != 8 {
		t.Errorf("%d GSIs, want 8", indexes)
	}
	s.template.HasResourceProperties(jsii.String("AWS::DynamoDB::Table"), map[string]any{
		"StreamSpecification": map[string]any{"StreamViewType": "NEW_AND_OLD_IMAGES"},
	})
}

func TestFunctions(t *testing.T) {
	defer failOnPanic(t)
	s := streamerStack(t)
	c := s.stack.Streamer
	tableEnv := map[string]any{
		config.EnvConnectionsTable:   map[string]any{"Ref": logicalID(s, c.ConnectionsTable)},
		config.EnvRequestsTable:      map[string]any{"Ref": logicalID(s, c.RequestsTable)},
		config.EnvSubscriptionsTable: map[string]any{"Ref": logicalID(s, c.SubscriptionsTable)},
	}
	endpoint := "https://<" + logicalID(s, c.API) + ">.execute-api.<AWS::Region>.<AWS::URLSuffix>/prod"
	tests := []struct {
		name    string
		id      string
		memory  float64
		timeout float64
		env     map[string]string
	}{
		{"router", logicalID(s, c.RouterFunction), 256, 10, map[string]string{
			config.EnvLogLevel: "info", config.EnvRateLimit: "10", config.EnvTenantMaxInflight: "1000",
			config.EnvTenantMaxConnections: "1000", config.EnvMaxPayloadBytes: "32768", config.EnvSyncTimeout: "5s",
			config.EnvConnectionTTL: "9000s", config.EnvRequestTTL: "604800s",
			config.EnvJWTSecretARN: "<" + logicalID(s, c.JWTSecret) + ">",
		}},
		{"processor", logicalID(s, c.ProcessorFunction), 512, 900, map[string]string{
			config.EnvLogLevel: "info", config.EnvProcessorConcurrency: "10", config.EnvRequestTTL: "604800s",
			config.EnvRetryQueueURL:      "<" + logicalID(s, c.RetryQueue) + ">",
			config.EnvDeadLetterQueueURL: "<" + logicalID(s, c.DeadLetterQueue) + ">",
		}},
	}
	functions := resources(t, s.template, "AWS::Lambda::Function")
	if len(functions) != 2 {
		t.Fatalf("%d functions, want 2", len(functions))
	}
	for _, tt := range tests {
		p := props(functions[tt.id])
		if p == nil {
			t.Fatalf("%s: no function %s", tt.name, tt.id)
		}
		for key, want := range map[string]any{
			"Runtime": "provided.al2023", "Handler": "bootstrap", "Architectures": []any{"arm64"},
			"MemorySize": tt.memory, "Timeout": tt.timeout, "TracingConfig": map[string]any{"Mode": "Active"},
		} {
			if got := p[key]; !reflect.DeepEqual(got, want) {
				t.Errorf("%s %s = %v, want %v", tt.name, key, got, want)
			}
		}
		if got := render(p["LoggingConfig"].(map[string]any)["LogGroup"]); !strings.HasPrefix(got, "<Streamer") {
			t.Errorf("%s log group = %s, want its own log group", tt.name, got)
		}
		got := map[string]string{}
		for k, v := range p["Environment"].(map[string]any)["Variables"].(map[string]any) {
			got[k] = render(v)
		}
		want := map[string]string{config.EnvConnectionsEndpoint: endpoint}
		for k, v := range tableEnv {
			want[k] = render(v)
		}
		for k, v := range tt.env {
			want[k] = v
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s environment:\n got %v\nwant %v", tt.name, got, want)
		}
	}
}

func TestEventSourceMappings(t *testing.T) {
	defer failOnPanic(t)
	s := streamerStack(t)
	c := s.stack.Streamer
	var filters []any
	for _, p := range streamfilter.Patterns() {
		filters = append(filters, map[string]any{"Pattern": p})
	}
	s.template.HasResourceProperties(jsii.String("AWS::Lambda::EventSourceMapping"), assertions.Match_ObjectEquals(&map[string]any{
		"FunctionName":               map[string]any{"Ref": logicalID(s, c.ProcessorFunction)},
		"EventSourceArn":             map[string]any{"Fn::GetAtt": []any{logicalID(s, c.RequestsTable), "StreamArn"}},
		"StartingPosition":           "TRIM_HORIZON",
		"BatchSize":                  10,
		"ParallelizationFactor":      2,
		"BisectBatchOnFunctionError": true,
		"MaximumRetryAttempts":       3,
		"MaximumRecordAgeInSeconds":  3600,
		"FunctionResponseTypes":      []any{"ReportBatchItemFailures"},
		"DestinationConfig": map[string]any{"OnFailure": map[string]any{
			"Destination": map[string]any{"Fn::GetAtt": []any{logicalID(s, c.DeadLetterQueue), "Arn"}},
		}},
		"FilterCriteria": map[string]any{"Filters": filters},
	}))
	s.template.HasResourceProperties(jsii.String("AWS::Lambda::EventSourceMapping"), assertions.Match_ObjectEquals(&map[string]any{
		"FunctionName":          map[string]any{"Ref": logicalID(s, c.ProcessorFunction)},
		"EventSourceArn":        map[string]any{"Fn::GetAtt": []any{logicalID(s, c.RetryQueue), "Arn"}},
		"BatchSize":             5,
		"FunctionResponseTypes": []any{"ReportBatchItemFailures"},
	}))
	s.template.ResourceCountIs(jsii.String("AWS::Lambda::EventSourceMapping"), jsii.Number(2))
}

func TestQueues(t *testing.T) {
	defer failOnPanic(t)
	s := streamerStack(t)
	c := s.stack.Streamer
	queues := resources(t, s.template, "AWS::SQS::Queue")
	if len(queues) != 3 {
		t.Fatalf("%d queues, want 3", len(queues))
	}
	for id, q := range queues {
		p := props(q)
		if p["SqsManagedSseEnabled"] != true || p["MessageRetentionPeriod"] != 1209600.0 {
			t.Errorf("queue %s: SSE %v, retention %v; want SSE and 14 days", id, p["SqsManagedSseEnabled"], p["MessageRetentionPeriod"])
		}
	}
	retry := props(queues[logicalID(s, c.RetryQueue)])
	if got, want := render(retry["RedrivePolicy"].(map[string]any)["deadLetterTargetArn"]), "<"+logicalID(s, c.RetryDeadLetterQueue)+".Arn>"; got != want {
		t.Errorf("retry queue redrives to %s, want %s", got, want)
	}
	if got := retry["VisibilityTimeout"]; got != 5400.0 {
		t.Errorf("retry queue visibility timeout = %v, want 5400 (6 x processor timeout)", got)
	}
	// Every queue denies requests without TLS.
	policies := resources(t, s.template, "AWS::SQS::QueuePolicy")
	secured := map[string]bool{}
	for _, qp := range policies {
		for _, st := range statements(props(qp)["PolicyDocument"]) {
			if strings.HasPrefix(st, "Deny sqs:* -> ") {
				for _, q := range props(qp)["Queues"].([]any) {
					secured[strings.Trim(render(q), "<>")] = true
				}
			}
		}
	}
	for id := range queues {
		if !secured[id] {
			t.Errorf("queue %s has no enforce-SSL policy", id)
		}
	}
}

func TestIAMLeastPrivilege(t *testing.T) {
	defer failOnPanic(t)
	s := streamerStack(t)
	c := s.stack.Streamer
	rw := "dynamodb:BatchGetItem,dynamodb:BatchWriteItem,dynamodb:ConditionCheckItem,dynamodb:DeleteItem," +
		"dynamodb:DescribeTable,dynamodb:GetItem,dynamodb:PutItem,dynamodb:Query,dynamodb:Scan,dynamodb:UpdateItem"
	var tableStatements []string
	for _, tbl := range c.Tables() {
		arn := "<" + logicalID(s, tbl) + ".Arn>"
		tableStatements = append(tableStatements,
			"Allow "+rw+" -> "+arn+" "+arn+"/index/*",
			"Allow dynamodb:GetRecords,dynamodb:GetShardIterator -> "+arn+" "+arn+"/index/*")
	}
	manage := "Allow execute-api:ManageConnections -> arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<" +
		logicalID(s, c.API) + ">/*/*/@connections/*"
	xray := "Allow xray:PutTelemetryRecords,xray:PutTraceSegments -> *"
	logs := func(lg string) string { return "Allow logs:CreateLogStream,logs:PutLogEvents -> <" + lg + ".Arn>" }
	send := "sqs:GetQueueAttributes,sqs:GetQueueUrl,sqs:SendMessage"
	tests := []struct {
		name string
		role string
		want []string
	}{
		{"router", logicalID(s, c.RouterFunction.Role()), append([]string{
			logs(logicalID(s, c.RouterLogGroup)), xray, manage,
			"Allow secretsmanager:DescribeSecret,secretsmanager:GetSecretValue -> <" + logicalID(s, c.JWTSecret) + ">",
		}, tableStatements...)},
		{"processor", logicalID(s, c.ProcessorFunction.Role()), append([]string{
			logs(logicalID(s, c.ProcessorLogGroup)), xray, manage,
			"Allow dynamodb:ListStreams -> *",
			"Allow dynamodb:DescribeStream,dynamodb:GetRecords,dynamodb:GetShardIterator -> <" + logicalID(s, c.RequestsTable) + ".StreamArn>",
			"Allow " + send + " -> <" + logicalID(s, c.DeadLetterQueue) + ".Arn>",
			"Allow " + send + " -> <" + logicalID(s, c.RetryQueue) + ".Arn>",
			"Allow sqs:ChangeMessageVisibility,sqs:DeleteMessage,sqs:GetQueueAttributes,sqs:GetQueueUrl,sqs:ReceiveMessage -> <" + logicalID(s, c.RetryQueue) + ".Arn>",
		}, tableStatements...)},
	}
	for _, tt := range tests {
		got := policyOf(t, s, tt.role)
		sort.Strings(tt.want)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s policy:\n got %s\nwant %s", tt.name, strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
		}
	}
	for id, r := range resources(t, s.template, "AWS::IAM::Role") {
		if _, ok := props(r)["ManagedPolicyArns"]; ok {
			t.Errorf("role %s has managed policies", id)
		}
	}
	for id, p := range resources(t, s.template, "AWS::IAM::Policy") {
		for _, st := range statements(props(p)["PolicyDocument"]) {
			actions := strings.Fields(st)[1]
			if strings.Contains(actions, "*") {
				t.Errorf("policy %s has a wildcard action: %s", id, st)
			}
		}
	}
}

func TestAlarms(t *testing.T) {
	defer failOnPanic(t)
	s := streamerStack(t)
	c := s.stack.Streamer
	topic := map[string]any{"Ref": logicalID(s, s.stack.AlarmTopic)}
	fn := func(f string) map[string]any {
		return map[string]any{"Name": "FunctionName", "Value": map[string]any{"Ref": f}}
	}
	queue := func(q string) map[string]any {
		return map[string]any{"Name": "QueueName", "Value": map[string]any{"Fn::GetAtt": []any{q, "QueueName"}}}
	}
	api := map[string]any{"Name": "ApiId", "Value": map[string]any{"Ref": logicalID(s, c.API)}}
	router, processor := logicalID(s, c.RouterFunction), logicalID(s, c.ProcessorFunction)
	tests := []struct {
		namespace, metric, stat string
		dimension               map[string]any
		threshold, periods      float64
	}{
		{"AWS/Lambda", "IteratorAge", "Maximum", fn(processor), 300000, 1},
		{"AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", queue(logicalID(s, c.DeadLetterQueue)), 1, 1},
		{"AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", queue(logicalID(s, c.RetryDeadLetterQueue)), 1, 1},
		{"AWS/Lambda", "Errors", "Sum", fn(processor), 1, 1},
		{"AWS/Lambda", "Errors", "Sum", fn(router), 1, 1},
		{"AWS/Lambda", "Throttles", "Sum", fn(processor), 1, 1},
		{"AWS/Lambda", "Throttles", "Sum", fn(router), 1, 1},
		{"AWS/Lambda", "Duration", "p99", fn(processor), 60000, 3},
		{"AWS/ApiGateway", "ConnectCount", "Sum", api, 10000, 1},
		{"AWS/ApiGateway", "IntegrationError", "Sum", api, 1, 1},
		{"AWS/ApiGateway", "ExecutionError", "Sum", api, 1, 1},
	}
	s.template.ResourceCountIs(jsii.String("AWS::CloudWatch::Alarm"), jsii.Number(float64(len(tests))))
	for _, tt := range tests {
		s.template.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), map[string]any{
			"Metrics": []any{assertions.Match_ObjectLike(&map[string]any{
				"MetricStat": map[string]any{
					"Metric": map[string]any{
						"Namespace": tt.namespace, "MetricName": tt.metric, "Dimensions": []any{tt.dimension},
					},
					"Stat":   tt.stat,
					"Period": 300,
				},
			})},
			"Threshold":          tt.threshold,
			"EvaluationPeriods":  tt.periods,
			"ComparisonOperator": "GreaterThanOrEqualToThreshold",
			"TreatMissingData":   "notBreaching",
			"AlarmActions":       []any{topic},
			"OKActions":          []any{topic},
		})
	}
	s.template.HasResourceProperties(jsii.String("AWS::SNS::Subscription"), map[string]any{
		"Protocol": "email", "Endpoint": alarmEmail, "TopicArn": topic,
	})
}

func TestDashboard(t *testing.T) {
	defer failOnPanic(t)
	s := streamerStack(t)
	s.template.ResourceCountIs(jsii.String("AWS::CloudWatch::Dashboard"), jsii.Number(1))
	for _, d := range resources(t, s.template, "AWS::CloudWatch::Dashboard") {
		body := render(props(d)["DashboardBody"])
		for _, want := range []string{"Connections", "Requests by outcome", "Processing time", "Queue depth", "Errors", "Alarms"} {
			if !strings.Contains(body, `"title":"`+want) {
				t.Errorf("dashboard has no %q widget", want)
			}
		}
	}
}

func TestOutputs(t *testing.T) {
	defer failOnPanic(t)
	s := streamerStack(t)
	outputs := s.template.FindOutputs(jsii.String("*"), nil)
	var got []string
	for id, o := range *outputs {
		if _, exported := (*o)["Export"]; exported {
			t.Errorf("output %s is exported: export names collide between deployments", id)
		}
		got = append(got, id)
	}
	sort.Strings(got)
	want := []string{"StreamerConnectionsTableNameD2F6F52B", "StreamerDeadLetterQueueURL2AC10D5E",
		"StreamerRequestsTableName1C5A3A01", "StreamerSubscriptionsTableName22DA4A07", "StreamerWebSocketURL6C4D17EA"}
	if len(got) != len(want) {
		t.Errorf("outputs = %v, want %v", got, want)
	}
	for i := range got {
		if i < len(want) && !strings.HasPrefix(got[i], strings.TrimRight(want[i], "0123456789ABCDEF")) {
			t.Errorf("output %d = %s, want %s", i, got[i], want[i])
		}
	}
}

// physicalNameKeys are properties that fix a resource's name in the account;
// none may be set, so one stack deploys twice and two constructs share a stack.
var physicalNameKeys = []string{"TableName", "FunctionName", "QueueName", "RoleName", "LogGroupName",
	"TopicName", "DashboardName", "AlarmName", "Name", "PolicyName"}

func TestNoPhysicalNames(t *testing.T) {
	defer failOnPanic(t)
	s := streamerStack(t)
	tmpl := s.template.ToJSON()
	for id, r := range (*tmpl)["Resources"].(map[string]any) {
		r := r.(map[string]any)
		typ := r["Type"].(string)
		for _, key := range physicalNameKeys {
			v, ok := props(r)[key]
			if !ok {
				continue
			}
			switch {
			case typ == "AWS::IAM::Policy" && key == "PolicyName":
				// Inline policy names are scoped to their role.
			case typ == "AWS::ApiGatewayV2::Api" && key == "Name":
				// API names need not be unique; the ID is the identity.
			case key == "FunctionName" && typ != "AWS::Lambda::Function":
				// A reference to a function, not a name.
			default:
				t.Errorf("%s (%s) sets %s = %v", id, typ, key, v)
			}
		}
	}
}

// TestJWTSecret checks the generated signing secret: the flat format the
// router reads (config.EnvJWTSecretARN), a 64-character key, and retention.
func TestJWTSecret(t *testing.T) {
	defer failOnPanic(t)
	s := streamerStack(t)
	s.template.ResourceCountIs(jsii.String("AWS::SecretsManager::Secret"), jsii.Number(1))
	s.template.HasResource(jsii.String("AWS::SecretsManager::Secret"), map[string]any{
		"DeletionPolicy": "Retain",
		"Properties": assertions.Match_ObjectLike(&map[string]any{
			"GenerateSecretString": assertions.Match_ObjectEquals(&map[string]any{
				"SecretStringTemplate": `{"kid":"v1"}`,
				"GenerateStringKey":    "key",
				"PasswordLength":       64,
				"ExcludePunctuation":   true,
			}),
		}),
	})
}
