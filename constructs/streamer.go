// Package streamer provides StreamerConstruct, the AWS CDK construct that
// deploys Streamer: a WebSocket API whose router Lambda answers fast actions and
// queues long ones in DynamoDB, and a processor Lambda that runs queued requests
// from the requests table's stream and reports progress over the WebSocket.
//
// The package name is streamer so that it does not clash with
// github.com/aws/constructs-go/constructs/v10 in an importer's file.
package streamer

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/streamer-dev/streamer/functions/schema"
)

// StreamerConstruct is a complete Streamer deployment. Every resource it
// creates is exported so that embedders can extend it.
type StreamerConstruct struct {
	constructs.Construct

	// ConnectionsTable holds one item per open WebSocket connection.
	ConnectionsTable awsdynamodb.Table
	// RequestsTable holds one item per async request; its stream feeds the processor.
	RequestsTable awsdynamodb.Table
	// SubscriptionsTable links connections to the requests they watch.
	SubscriptionsTable awsdynamodb.Table

	// API is the WebSocket API; its $connect, $disconnect and $default routes
	// invoke RouterFunction.
	API awsapigatewayv2.WebSocketApi
	// Stage is the API's auto-deployed, throttled, access-logged stage.
	Stage awsapigatewayv2.WebSocketStage
	// AccessLogGroup receives the stage's JSON access logs.
	AccessLogGroup awslogs.LogGroup
	// WebSocketURL is the wss:// URL clients connect to.
	WebSocketURL *string
	// ConnectionsEndpoint is the https:// base URL of the @connections API.
	ConnectionsEndpoint *string

	// RouterFunction answers WebSocket events.
	RouterFunction awslambda.Function
	// RouterLogGroup receives the router's logs.
	RouterLogGroup awslogs.LogGroup
	// ProcessorFunction runs queued requests.
	ProcessorFunction awslambda.Function
	// ProcessorLogGroup receives the processor's logs.
	ProcessorLogGroup awslogs.LogGroup
	// StreamEventSource maps the requests stream to ProcessorFunction.
	StreamEventSource awslambdaeventsources.DynamoEventSource
	// RetryEventSource maps RetryQueue to ProcessorFunction.
	RetryEventSource awslambdaeventsources.SqsEventSource

	// DeadLetterQueue receives stream batches the processor could not handle
	// (the mapping's on-failure destination) and requests that exhausted their
	// retries.
	DeadLetterQueue awssqs.Queue
	// RetryQueue carries delayed messages from the processor to itself:
	// retries with backoff, scheduled requests and lease watchdogs.
	RetryQueue awssqs.Queue
	// RetryDeadLetterQueue receives retry-queue messages that failed repeatedly.
	RetryDeadLetterQueue awssqs.Queue

	// JWTSecret holds the HS256 signing keys; nil when tokens are checked
	// against JWKSURL.
	JWTSecret awssecretsmanager.ISecret

	// Alarms are the operational alarms, all wired to AlarmTopic when given.
	Alarms Alarms
	// Dashboard shows connections, requests by outcome, processing time,
	// queue depths and errors.
	Dashboard awscloudwatch.Dashboard
}

// NewStreamerConstruct provisions Streamer under scope. props may be nil. It
// panics with a lowercase message naming the bad value when props are invalid.
func NewStreamerConstruct(scope constructs.Construct, id *string, props *StreamerConstructProps) *StreamerConstruct {
	if err := props.validate(); err != nil {
		panic(fmt.Sprintf("streamer: invalid props: %v", err))
	}
	if props == nil {
		props = &StreamerConstructProps{}
	}
	s := props.resolve()
	c := &StreamerConstruct{Construct: constructs.NewConstruct(scope, id)}

	c.newTables(props, s)
	c.newQueues(props, s)
	c.JWTSecret = props.JWTSecret
	if c.JWTSecret == nil && s.jwksURL == "" {
		c.JWTSecret = newJWTSecret(c.Construct, props, s)
	}
	c.newAPI(s)
	c.newRouter(s)
	c.newProcessor(s)
	c.newMonitoring(props, s)
	c.newOutputs()
	c.suppressNagFindings()
	return c
}

// newTables creates the three tables from functions/schema.
func (c *StreamerConstruct) newTables(props *StreamerConstructProps, s settings) {
	for _, t := range schema.Tables() {
		table := newTable(c.Construct, t, props, s)
		switch t.ID {
		case "Connections":
			c.ConnectionsTable = table
		case "Requests":
			c.RequestsTable = table
		case "Subscriptions":
			c.SubscriptionsTable = table
		}
	}
}

// Tables returns the connections, requests and subscriptions tables, in that order.
func (c *StreamerConstruct) Tables() []awsdynamodb.Table {
	return []awsdynamodb.Table{c.ConnectionsTable, c.RequestsTable, c.SubscriptionsTable}
}

// newQueues creates the dead-letter queue and the retry queue with its own
// dead-letter queue, all encrypted and TLS-only.
func (c *StreamerConstruct) newQueues(props *StreamerConstructProps, s settings) {
	queue := func(id string, extra awssqs.QueueProps) awssqs.Queue {
		extra.EnforceSSL = jsii.Bool(true)
		extra.RemovalPolicy = s.removal
		if props.EncryptionKey != nil {
			extra.Encryption = awssqs.QueueEncryption_KMS
			extra.EncryptionMasterKey = props.EncryptionKey
		} else {
			extra.Encryption = awssqs.QueueEncryption_SQS_MANAGED
		}
		return awssqs.NewQueue(c.Construct, jsii.String(id), &extra)
	}
	fourteenDays := awscdk.Duration_Days(jsii.Number(14))
	c.DeadLetterQueue = queue("DeadLetterQueue", awssqs.QueueProps{RetentionPeriod: fourteenDays})
	c.RetryDeadLetterQueue = queue("RetryDeadLetterQueue", awssqs.QueueProps{RetentionPeriod: fourteenDays})
	c.RetryQueue = queue("RetryQueue", awssqs.QueueProps{
		// Lambda's guidance: at least six times the consumer's timeout, so a
		// message is not redelivered while an invocation still holds it.
		VisibilityTimeout: awscdk.Duration_Seconds(jsii.Number(min(6*s.processorTimeout, 43200))),
		RetentionPeriod:   fourteenDays,
		DeadLetterQueue: &awssqs.DeadLetterQueue{
			Queue:           c.RetryDeadLetterQueue,
			MaxReceiveCount: jsii.Number(5),
		},
	})
}

// newJWTSecret generates the HS256 signing secret in the flat format the
// router reads (config.EnvJWTSecretARN).
func newJWTSecret(scope constructs.Construct, props *StreamerConstructProps, s settings) awssecretsmanager.Secret {
	secret := awssecretsmanager.NewSecret(scope, jsii.String("JWTSecret"), &awssecretsmanager.SecretProps{
		Description:   jsii.String("Streamer HS256 token signing key: {\"kid\", \"key\"}"),
		EncryptionKey: props.EncryptionKey,
		RemovalPolicy: s.removal,
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			SecretStringTemplate: jsii.String(`{"kid":"v1"}`),
			GenerateStringKey:    jsii.String("key"),
			PasswordLength:       jsii.Number(64),
			ExcludePunctuation:   jsii.Bool(true),
		},
	})
	suppress(secret, "AwsSolutions-SMG4",
		"HS256 keys rotate by writing previous_kid/previous_key beside a new key, which the router "+
			"accepts during the overlap; rotation is an operator action, not a Lambda schedule")
	return secret
}

// newLogGroup creates a log group with the configured retention.
func newLogGroup(scope constructs.Construct, id string, s settings) awslogs.LogGroup {
	return awslogs.NewLogGroup(scope, jsii.String(id), &awslogs.LogGroupProps{
		Retention:     s.logRetention,
		RemovalPolicy: s.removal,
	})
}

// newFunctionRole creates a Lambda role that may write only to logs: no
// managed policies; grants add the rest.
func newFunctionRole(scope constructs.Construct, id string, logs awslogs.LogGroup) awsiam.Role {
	role := awsiam.NewRole(scope, jsii.String(id), &awsiam.RoleProps{
		AssumedBy: awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
	})
	logs.GrantWrite(role)
	return role
}

// newOutputs exports the URL, the table names and the dead-letter queue URL.
func (c *StreamerConstruct) newOutputs() {
	out := func(id, description string, value *string) {
		awscdk.NewCfnOutput(c.Construct, jsii.String(id), &awscdk.CfnOutputProps{
			Description: jsii.String(description),
			Value:       value,
		})
	}
	out("WebSocketURL", "WebSocket URL clients connect to", c.WebSocketURL)
	out("ConnectionsTableName", "Connections table", c.ConnectionsTable.TableName())
	out("RequestsTableName", "Requests table", c.RequestsTable.TableName())
	out("SubscriptionsTableName", "Subscriptions table", c.SubscriptionsTable.TableName())
	out("DeadLetterQueueURL", "Dead-letter queue of failed requests", c.DeadLetterQueue.QueueUrl())
}
