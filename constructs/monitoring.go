package streamer

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/interfaces/interfacesawscloudwatch"
	"github.com/aws/jsii-runtime-go"
)

// MetricsNamespace is the CloudWatch namespace of the metrics the Lambdas emit
// in Embedded Metric Format, with dimension Service ("router" or "processor").
const MetricsNamespace = "Streamer"

// Alarms are the construct's CloudWatch alarms. Each fires on one datapoint
// at or above its threshold; missing data is not breaching.
type Alarms struct {
	// StreamIteratorAge: the oldest unprocessed stream record is older than
	// IteratorAgeAlarmSeconds (queue backup).
	StreamIteratorAge awscloudwatch.Alarm
	// DeadLetterQueueDepth: a failed request is waiting in the dead-letter queue.
	DeadLetterQueueDepth awscloudwatch.Alarm
	// RetryDeadLetterQueueDepth: a retry message failed repeatedly.
	RetryDeadLetterQueueDepth awscloudwatch.Alarm
	// ProcessorErrors: a processor invocation failed.
	ProcessorErrors awscloudwatch.Alarm
	// RouterErrors: a router invocation failed.
	RouterErrors awscloudwatch.Alarm
	// ProcessorThrottles: the processor was throttled.
	ProcessorThrottles awscloudwatch.Alarm
	// RouterThrottles: the router was throttled.
	RouterThrottles awscloudwatch.Alarm
	// ProcessorDurationP99: the processor's p99 duration exceeds the SLA for
	// three periods in a row.
	ProcessorDurationP99 awscloudwatch.Alarm
	// ConnectionCount: new connections in 5 minutes reached ConnectionLimit.
	ConnectionCount awscloudwatch.Alarm
	// APIIntegrationErrors: the router returned errors to API Gateway.
	APIIntegrationErrors awscloudwatch.Alarm
	// APIExecutionErrors: API Gateway failed to invoke the router.
	APIExecutionErrors awscloudwatch.Alarm
}

// All returns every alarm in a stable order.
func (a Alarms) All() []awscloudwatch.Alarm {
	return []awscloudwatch.Alarm{
		a.StreamIteratorAge, a.DeadLetterQueueDepth, a.RetryDeadLetterQueueDepth,
		a.ProcessorErrors, a.RouterErrors, a.ProcessorThrottles, a.RouterThrottles,
		a.ProcessorDurationP99, a.ConnectionCount, a.APIIntegrationErrors, a.APIExecutionErrors,
	}
}

// fiveMinutes is the period of every metric.
func fiveMinutes() awscdk.Duration { return awscdk.Duration_Minutes(jsii.Number(5)) }

// metricOptions fills the options a caller left out: statistic, a 5-minute
// period and a label.
func metricOptions(props *awscloudwatch.MetricOptions, statistic, label string) *awscloudwatch.MetricOptions {
	o := awscloudwatch.MetricOptions{}
	if props != nil {
		o = *props
	}
	if o.Statistic == nil {
		o.Statistic = jsii.String(statistic)
	}
	if o.Period == nil {
		o.Period = fiveMinutes()
	}
	if o.Label == nil {
		o.Label = jsii.String(label)
	}
	return &o
}

// MetricRouterErrors is the router's failed invocations (Sum).
func (c *StreamerConstruct) MetricRouterErrors(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return c.RouterFunction.MetricErrors(metricOptions(props, "Sum", "router errors"))
}

// MetricProcessorErrors is the processor's failed invocations (Sum).
func (c *StreamerConstruct) MetricProcessorErrors(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return c.ProcessorFunction.MetricErrors(metricOptions(props, "Sum", "processor errors"))
}

// MetricRouterThrottles is the router's throttled invocations (Sum).
func (c *StreamerConstruct) MetricRouterThrottles(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return c.RouterFunction.MetricThrottles(metricOptions(props, "Sum", "router throttles"))
}

// MetricProcessorThrottles is the processor's throttled invocations (Sum).
func (c *StreamerConstruct) MetricProcessorThrottles(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return c.ProcessorFunction.MetricThrottles(metricOptions(props, "Sum", "processor throttles"))
}

// MetricRouterDuration is the router's duration (p99 by default).
func (c *StreamerConstruct) MetricRouterDuration(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return c.RouterFunction.MetricDuration(metricOptions(props, "p99", "router duration"))
}

// MetricProcessorDuration is the processor's duration (p99 by default).
func (c *StreamerConstruct) MetricProcessorDuration(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return c.ProcessorFunction.MetricDuration(metricOptions(props, "p99", "processor duration"))
}

// MetricStreamIteratorAge is the age in milliseconds of the last record the
// processor read from the requests stream (Maximum).
func (c *StreamerConstruct) MetricStreamIteratorAge(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return c.ProcessorFunction.Metric(jsii.String("IteratorAge"), metricOptions(props, "Maximum", "stream iterator age"))
}

// MetricDeadLetterQueueDepth is the messages waiting in the dead-letter queue (Maximum).
func (c *StreamerConstruct) MetricDeadLetterQueueDepth(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return c.DeadLetterQueue.MetricApproximateNumberOfMessagesVisible(metricOptions(props, "Maximum", "dead-letter queue"))
}

// MetricRetryQueueDepth is the retries and scheduled requests waiting (Maximum).
func (c *StreamerConstruct) MetricRetryQueueDepth(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return c.RetryQueue.MetricApproximateNumberOfMessagesVisible(metricOptions(props, "Maximum", "retry queue"))
}

// MetricRetryDeadLetterQueueDepth is the messages waiting in the retry queue's
// dead-letter queue (Maximum).
func (c *StreamerConstruct) MetricRetryDeadLetterQueueDepth(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return c.RetryDeadLetterQueue.MetricApproximateNumberOfMessagesVisible(metricOptions(props, "Maximum", "retry dead-letter queue"))
}

// MetricConnectCount is the WebSocket connections opened on this API (Sum).
// API Gateway publishes no gauge of open connections; this is its count of
// new ones.
func (c *StreamerConstruct) MetricConnectCount(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return c.API.Metric(jsii.String("ConnectCount"), metricOptions(props, "Sum", "new connections"))
}

// MetricMessageCount is the messages sent to and from this API (Sum).
func (c *StreamerConstruct) MetricMessageCount(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return c.API.Metric(jsii.String("MessageCount"), metricOptions(props, "Sum", "messages"))
}

// MetricIntegrationErrors is the router responses API Gateway counted as
// errors (Sum).
func (c *StreamerConstruct) MetricIntegrationErrors(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return c.API.Metric(jsii.String("IntegrationError"), metricOptions(props, "Sum", "integration errors"))
}

// MetricExecutionErrors is API Gateway's own failures to run the integration (Sum).
func (c *StreamerConstruct) MetricExecutionErrors(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return c.API.Metric(jsii.String("ExecutionError"), metricOptions(props, "Sum", "execution errors"))
}

// MetricProcessorOutcomes searches the processor's EMF metrics (namespace
// MetricsNamespace, Service "processor"): requests by outcome and status.
func (c *StreamerConstruct) MetricProcessorOutcomes() awscloudwatch.MathExpression {
	return awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression: jsii.String(`SEARCH('Namespace="` + MetricsNamespace + `" Service="processor"', 'Sum', 300)`),
		Label:      jsii.String("processor outcomes"),
		Period:     fiveMinutes(),
	})
}

// GrantManageConnections lets grantee send frames to, inspect and close this
// API's connections.
func (c *StreamerConstruct) GrantManageConnections(grantee awsiam.IGrantable) awsiam.Grant {
	return c.API.GrantManageConnections(grantee)
}

// GrantSubmitRequests lets grantee queue requests for the processor by
// writing PENDING items to the requests table.
func (c *StreamerConstruct) GrantSubmitRequests(grantee awsiam.IGrantable) awsiam.Grant {
	return c.RequestsTable.GrantWriteData(grantee)
}

// GrantReadData lets grantee read the three tables and their indexes.
func (c *StreamerConstruct) GrantReadData(grantee awsiam.IGrantable) {
	for _, t := range c.Tables() {
		t.GrantReadData(grantee)
	}
}

// newMonitoring creates the alarms, wires them to the topic and builds the
// dashboard, all from the Metric* methods.
func (c *StreamerConstruct) newMonitoring(props *StreamerConstructProps, s settings) {
	alarm := func(id, description string, metric awscloudwatch.IMetric, threshold, periods float64) awscloudwatch.Alarm {
		a := awscloudwatch.NewAlarm(c.Construct, jsii.String(id+"Alarm"), &awscloudwatch.AlarmProps{
			AlarmDescription:   jsii.String(description),
			Metric:             metric,
			Threshold:          jsii.Number(threshold),
			EvaluationPeriods:  jsii.Number(periods),
			DatapointsToAlarm:  jsii.Number(periods),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
		if props.AlarmTopic != nil {
			action := awscloudwatchactions.NewSnsAction(props.AlarmTopic)
			a.AddAlarmAction(action)
			a.AddOkAction(action)
		}
		return a
	}
	c.Alarms = Alarms{
		StreamIteratorAge: alarm("StreamIteratorAge", "Requests stream is backing up: the processor is behind",
			c.MetricStreamIteratorAge(nil), s.iteratorAge*1000, 1),
		DeadLetterQueueDepth: alarm("DeadLetterQueueDepth", "Failed requests are waiting in the dead-letter queue",
			c.MetricDeadLetterQueueDepth(nil), 1, 1),
		RetryDeadLetterQueueDepth: alarm("RetryDeadLetterQueueDepth", "Retry messages failed repeatedly and wait in the retry dead-letter queue",
			c.MetricRetryDeadLetterQueueDepth(nil), 1, 1),
		ProcessorErrors: alarm("ProcessorErrors", "Processor invocations failed",
			c.MetricProcessorErrors(nil), 1, 1),
		RouterErrors: alarm("RouterErrors", "Router invocations failed",
			c.MetricRouterErrors(nil), 1, 1),
		ProcessorThrottles: alarm("ProcessorThrottles", "Processor invocations were throttled",
			c.MetricProcessorThrottles(nil), 1, 1),
		RouterThrottles: alarm("RouterThrottles", "Router invocations were throttled",
			c.MetricRouterThrottles(nil), 1, 1),
		ProcessorDurationP99: alarm("ProcessorDurationP99", "Processor p99 duration is above the SLA",
			c.MetricProcessorDuration(nil), s.durationSLA*1000, 3),
		ConnectionCount: alarm("ConnectionCount", "New WebSocket connections reached the connection limit",
			c.MetricConnectCount(nil), s.connectionLimit, 1),
		APIIntegrationErrors: alarm("APIIntegrationErrors", "The router returned errors to API Gateway",
			c.MetricIntegrationErrors(nil), 1, 1),
		APIExecutionErrors: alarm("APIExecutionErrors", "API Gateway failed to invoke the router",
			c.MetricExecutionErrors(nil), 1, 1),
	}
	c.Dashboard = c.newDashboard(s)
}

func (c *StreamerConstruct) newDashboard(s settings) awscloudwatch.Dashboard {
	graph := func(title string, left []awscloudwatch.IMetric, right []awscloudwatch.IMetric, annotations []*awscloudwatch.HorizontalAnnotation) awscloudwatch.IWidget {
		p := &awscloudwatch.GraphWidgetProps{Title: jsii.String(title), Width: jsii.Number(8), Height: jsii.Number(6), Left: &left}
		if len(right) > 0 {
			p.Right = &right
		}
		if len(annotations) > 0 {
			p.LeftAnnotations = &annotations
		}
		return awscloudwatch.NewGraphWidget(p)
	}
	p50 := &awscloudwatch.MetricOptions{Statistic: jsii.String("p50"), Label: jsii.String("processor p50")}
	d := awscloudwatch.NewDashboard(c.Construct, jsii.String("Dashboard"), &awscloudwatch.DashboardProps{})
	d.AddWidgets(
		graph("Connections", []awscloudwatch.IMetric{c.MetricConnectCount(nil), c.MetricMessageCount(nil)}, nil, nil),
		graph("Requests by outcome", []awscloudwatch.IMetric{c.MetricProcessorOutcomes()}, nil, nil),
		graph("Processing time (ms)",
			[]awscloudwatch.IMetric{c.MetricProcessorDuration(p50), c.MetricProcessorDuration(nil), c.MetricRouterDuration(nil)},
			[]awscloudwatch.IMetric{c.MetricStreamIteratorAge(nil)},
			[]*awscloudwatch.HorizontalAnnotation{{Value: jsii.Number(s.durationSLA * 1000), Label: jsii.String("SLA")}}),
	)
	d.AddWidgets(
		graph("Queue depth", []awscloudwatch.IMetric{
			c.MetricDeadLetterQueueDepth(nil), c.MetricRetryQueueDepth(nil), c.MetricRetryDeadLetterQueueDepth(nil),
		}, nil, nil),
		graph("Errors", []awscloudwatch.IMetric{
			c.MetricRouterErrors(nil), c.MetricProcessorErrors(nil), c.MetricRouterThrottles(nil),
			c.MetricProcessorThrottles(nil), c.MetricIntegrationErrors(nil), c.MetricExecutionErrors(nil),
		}, nil, nil),
		awscloudwatch.NewAlarmStatusWidget(&awscloudwatch.AlarmStatusWidgetProps{
			Title: jsii.String("Alarms"), Width: jsii.Number(8), Height: jsii.Number(6),
			Alarms: alarmRefs(c.Alarms.All()),
		}),
	)
	return d
}

func alarmRefs(alarms []awscloudwatch.Alarm) *[]interfacesawscloudwatch.IAlarmRef {
	out := make([]interfacesawscloudwatch.IAlarmRef, len(alarms))
	for i, a := range alarms {
		out[i] = a
	}
	return &out
}
