package streamer

import (
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigateway"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2integrations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/jsii-runtime-go"

	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/functions/streamfilter"
)

// Lambda settings shared by both functions.
const (
	lambdaArch    = "arm64"
	lambdaHandler = "bootstrap"
)

// accessLogFormat is one JSON line per WebSocket event.
const accessLogFormat = `{"requestId":"$context.requestId","connectionId":"$context.connectionId",` +
	`"eventType":"$context.eventType","routeKey":"$context.routeKey","status":"$context.status",` +
	`"requestTimeEpoch":"$context.requestTimeEpoch","ip":"$context.identity.sourceIp",` +
	`"integrationLatency":"$context.integrationLatency","integrationStatus":"$context.integrationStatus",` +
	`"error":"$context.error.message","integrationError":"$context.integration.error"}`

// accessLogSettings implements awsapigatewayv2.IAccessLogSettings.
type accessLogSettings struct {
	destination awsapigatewayv2.IAccessLogDestination
}

// Destination is the stage's access log group.
func (a *accessLogSettings) Destination() awsapigatewayv2.IAccessLogDestination {
	return a.destination
}

// Format is accessLogFormat.
func (a *accessLogSettings) Format() awsapigateway.AccessLogFormat {
	return awsapigateway.AccessLogFormat_Custom(jsii.String(accessLogFormat))
}

// newAPI creates the WebSocket API and its stage; the routes follow once the
// router exists.
func (c *StreamerConstruct) newAPI(s settings) {
	c.AccessLogGroup = newLogGroup(c.Construct, "AccessLogs", s)
	c.API = awsapigatewayv2.NewWebSocketApi(c.Construct, jsii.String("API"), &awsapigatewayv2.WebSocketApiProps{
		Description: jsii.String("Streamer WebSocket API"),
	})
	c.Stage = awsapigatewayv2.NewWebSocketStage(c.Construct, jsii.String("Stage"), &awsapigatewayv2.WebSocketStageProps{
		WebSocketApi: c.API,
		StageName:    jsii.String(s.stageName),
		AutoDeploy:   jsii.Bool(true),
		Throttle: &awsapigatewayv2.ThrottleSettings{
			RateLimit:  jsii.Number(s.rateLimit),
			BurstLimit: jsii.Number(s.burstLimit),
		},
		AccessLogSettings: &accessLogSettings{destination: awsapigatewayv2.NewLogGroupLogDestination(c.AccessLogGroup)},
	})
	c.WebSocketURL = c.Stage.Url()
	c.ConnectionsEndpoint = c.Stage.CallbackUrl()
}

// lambdaCode resolves an entry prop to Go code: a custom entry is built in the
// module of the working directory, a default one inside this module.
func lambdaCode(entry, defaultEntry string) awslambda.Code {
	if entry != "" {
		wd := cwd()
		if !filepath.IsAbs(entry) {
			entry = filepath.Join(wd, entry)
		}
		return GoCode(wd, entry, lambdaArch)
	}
	dir, err := ModuleDir(cwd())
	if err != nil {
		panic(fmt.Sprintf("streamer: %v", err))
	}
	return GoCode(dir, filepath.Join(dir, defaultEntry), lambdaArch)
}

// function is what differs between the two Lambdas.
type function struct {
	id, entry, defaultEntry string
	description             string
	memoryMiB, timeoutSecs  float64
	reserved                *float64
	env                     map[string]string
}

// newFunction creates a Go Lambda on provided.al2023 / arm64 with X-Ray
// tracing, its own log group and a role that starts with log writes only.
func (c *StreamerConstruct) newFunction(f function, s settings) (awslambda.Function, awslogs.LogGroup) {
	logs := newLogGroup(c.Construct, f.id+"Logs", s)
	env := map[string]*string{config.EnvLogLevel: jsii.String(s.logLevel)}
	for k, v := range f.env {
		env[k] = jsii.String(v)
	}
	fn := awslambda.NewFunction(c.Construct, jsii.String(f.id), &awslambda.FunctionProps{
		Description:                  jsii.String(f.description),
		Runtime:                      awslambda.Runtime_PROVIDED_AL2023(),
		Architecture:                 awslambda.Architecture_ARM_64(),
		Handler:                      jsii.String(lambdaHandler),
		Code:                         lambdaCode(f.entry, f.defaultEntry),
		MemorySize:                   jsii.Number(f.memoryMiB),
		Timeout:                      awscdk.Duration_Seconds(jsii.Number(f.timeoutSecs)),
		ReservedConcurrentExecutions: f.reserved,
		Tracing:                      awslambda.Tracing_ACTIVE,
		LogGroup:                     logs,
		Role:                         newFunctionRole(c.Construct, f.id+"Role", logs),
		Environment:                  &env,
	})
	return fn, logs
}

// commonEnv names the three tables and the @connections endpoint for both Lambdas.
func (c *StreamerConstruct) commonEnv() map[string]string {
	return map[string]string{
		config.EnvConnectionsTable:    *c.ConnectionsTable.TableName(),
		config.EnvRequestsTable:       *c.RequestsTable.TableName(),
		config.EnvSubscriptionsTable:  *c.SubscriptionsTable.TableName(),
		config.EnvConnectionsEndpoint: *c.ConnectionsEndpoint,
	}
}

func itoa(v float64) string    { return strconv.FormatFloat(v, 'f', -1, 64) }
func seconds(v float64) string { return itoa(v) + "s" }

// newRouter creates the router, its three routes and its grants: the three
// tables read/write (indexes included), @connections on this API, and read on
// the JWT secret.
func (c *StreamerConstruct) newRouter(s settings) {
	env := c.commonEnv()
	env[config.EnvRateLimit] = itoa(s.connRate)
	env[config.EnvTenantMaxInflight] = itoa(s.tenantInflight)
	env[config.EnvTenantMaxConnections] = itoa(s.tenantConns)
	env[config.EnvMaxPayloadBytes] = itoa(s.maxPayload)
	env[config.EnvSyncTimeout] = seconds(s.syncTimeout)
	env[config.EnvConnectionTTL] = seconds(s.connTTL)
	env[config.EnvRequestTTL] = seconds(s.reqTTL)
	if c.JWTSecret != nil {
		env[config.EnvJWTSecretARN] = *c.JWTSecret.SecretArn()
	}
	for name, v := range map[string]string{config.EnvJWKSURL: s.jwksURL, config.EnvJWTIssuer: s.jwtIssuer, config.EnvJWTAudience: s.jwtAudience} {
		if v != "" {
			env[name] = v
		}
	}
	c.RouterFunction, c.RouterLogGroup = c.newFunction(function{
		id: "Router", entry: s.routerEntry, defaultEntry: DefaultRouterEntry,
		description: "Streamer router: WebSocket $connect, $disconnect and messages",
		memoryMiB:   s.routerMemory, timeoutSecs: s.routerTimeout, reserved: s.routerReserved,
		env: env,
	}, s)
	for _, route := range []struct{ key, id string }{
		{"$connect", "Connect"}, {"$disconnect", "Disconnect"}, {"$default", "Default"},
	} {
		c.API.AddRoute(jsii.String(route.key), &awsapigatewayv2.WebSocketRouteOptions{
			Integration: awsapigatewayv2integrations.NewWebSocketLambdaIntegration(
				jsii.String(route.id+"Integration"), c.RouterFunction, nil),
		})
	}
	for _, t := range c.Tables() {
		t.GrantReadWriteData(c.RouterFunction)
	}
	c.API.GrantManageConnections(c.RouterFunction)
	if c.JWTSecret != nil {
		c.JWTSecret.GrantRead(c.RouterFunction, nil)
	}
}

// newProcessor creates the processor with its two event sources — the
// filtered requests stream and the retry queue — and its grants.
func (c *StreamerConstruct) newProcessor(s settings) {
	env := c.commonEnv()
	env[config.EnvRetryQueueURL] = *c.RetryQueue.QueueUrl()
	env[config.EnvDeadLetterQueueURL] = *c.DeadLetterQueue.QueueUrl()
	env[config.EnvProcessorConcurrency] = itoa(s.processorConcurrency)
	env[config.EnvRequestTTL] = seconds(s.reqTTL)
	c.ProcessorFunction, c.ProcessorLogGroup = c.newFunction(function{
		id: "Processor", entry: s.processorEntry, defaultEntry: DefaultProcessorEntry,
		description: "Streamer processor: runs queued requests from the requests stream and the retry queue",
		memoryMiB:   s.processorMemory, timeoutSecs: s.processorTimeout, reserved: s.processorReserved,
		env: env,
	}, s)

	var filters []*map[string]any
	for _, p := range streamfilter.Patterns() {
		filters = append(filters, &map[string]any{"pattern": p})
	}
	// TRIM_HORIZON: a request queued while the mapping is (re)created, or
	// before the first deployment finishes, is still processed; LATEST would
	// drop it. Old records are bounded by StreamMaxRecordAgeSeconds.
	c.StreamEventSource = awslambdaeventsources.NewDynamoEventSource(c.RequestsTable, &awslambdaeventsources.DynamoEventSourceProps{
		StartingPosition:        awslambda.StartingPosition_TRIM_HORIZON,
		BatchSize:               jsii.Number(s.streamBatch),
		ParallelizationFactor:   jsii.Number(s.streamParallel),
		BisectBatchOnError:      jsii.Bool(true),
		RetryAttempts:           jsii.Number(s.streamRetries),
		MaxRecordAge:            awscdk.Duration_Seconds(jsii.Number(s.streamMaxAge)),
		ReportBatchItemFailures: jsii.Bool(true),
		OnFailure:               awslambdaeventsources.NewSqsDlq(c.DeadLetterQueue),
		Filters:                 &filters,
	})
	c.ProcessorFunction.AddEventSource(c.StreamEventSource)
	c.RetryEventSource = awslambdaeventsources.NewSqsEventSource(c.RetryQueue, &awslambdaeventsources.SqsEventSourceProps{
		BatchSize:               jsii.Number(s.retryBatch),
		ReportBatchItemFailures: jsii.Bool(true),
	})
	c.ProcessorFunction.AddEventSource(c.RetryEventSource)

	for _, t := range c.Tables() {
		t.GrantReadWriteData(c.ProcessorFunction)
	}
	c.API.GrantManageConnections(c.ProcessorFunction)
	c.RetryQueue.GrantSendMessages(c.ProcessorFunction)
	c.DeadLetterQueue.GrantSendMessages(c.ProcessorFunction)
}
