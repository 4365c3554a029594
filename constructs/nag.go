package streamer

import (
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// suppress records a cdk-nag suppression, with its reason, on a construct and
// its children. appliesTo narrows it to findings matching these ECMA regexes.
func suppress(scope constructs.IConstruct, id, reason string, appliesTo ...string) {
	s := &cdknag.NagPackSuppression{Id: jsii.String(id), Reason: jsii.String(reason)}
	if len(appliesTo) > 0 {
		var applies []any
		for _, re := range appliesTo {
			applies = append(applies, &cdknag.RegexAppliesTo{Regex: jsii.String(re)})
		}
		s.AppliesTo = &applies
	}
	cdknag.NagSuppressions_AddResourceSuppressions(scope, &[]*cdknag.NagPackSuppression{s}, jsii.Bool(true))
}

// suppressNagFindings documents, for cdk-nag's AwsSolutions pack, the findings
// that are deliberate, so that embedders running cdk-nag see only their own.
func (c *StreamerConstruct) suppressNagFindings() {
	suppress(c.API, "AwsSolutions-APIG4",
		"WebSocket authorizers can only sit on $connect; the router verifies the JWT on $connect "+
			"and rejects the upgrade, and every later message is tied to that verified connection")
	suppress(c.DeadLetterQueue, "AwsSolutions-SQS3",
		"this queue is itself the dead-letter destination of the stream mapping and of exhausted requests")
	for _, fn := range []constructs.IConstruct{c.RouterFunction.Role(), c.ProcessorFunction.Role()} {
		suppress(fn, "AwsSolutions-IAM5",
			"table grants cover the table's own GSIs (<table>/index/*), which the functions query",
			`/^Resource::<.*\.Arn>\/index\/\*$/`)
		suppress(fn, "AwsSolutions-IAM5",
			"execute-api:ManageConnections is scoped to this API's @connections resource; connection ids are dynamic",
			`/^Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<.*>\/\*\/\*\/@connections\/\*$/`)
		suppress(fn, "AwsSolutions-IAM5",
			"xray:PutTraceSegments/PutTelemetryRecords and dynamodb:ListStreams support no resource-level permissions",
			`/^Resource::\*$/`)
	}
}
