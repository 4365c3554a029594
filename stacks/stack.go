// Package stacks holds Streamer's deployable CloudFormation stack.
package stacks

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigateway"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	streamer "github.com/streamer-dev/streamer/constructs"
)

// Context keys the stack reads (cdk -c key=value, or cdk.json "context").
const (
	// ContextAlarmEmail subscribes this e-mail address to a new alarm topic.
	ContextAlarmEmail = "alarmEmail"
	// ContextRemovalPolicy is "retain" (the default) or "destroy"; destroy
	// also turns off deletion protection, for throwaway stacks.
	ContextRemovalPolicy = "removalPolicy"
	// ContextAPIGatewayCloudWatchRole, when "true", sets the account's API
	// Gateway CloudWatch Logs role, which WebSocket access logging needs and
	// which an account and region have only once someone set it.
	ContextAPIGatewayCloudWatchRole = "apiGatewayCloudWatchRole"
)

// StreamerStackProps configure a StreamerStack.
type StreamerStackProps struct {
	awscdk.StackProps
	// Streamer configures the construct.
	// Default: the construct's defaults, plus the context settings above.
	Streamer *streamer.StreamerConstructProps
}

// StreamerStack is the deployable Streamer stack.
type StreamerStack struct {
	awscdk.Stack
	// Streamer is the construct with every resource.
	Streamer *streamer.StreamerConstruct
	// AlarmTopic is the topic created for the alarmEmail context; nil without it.
	AlarmTopic awssns.Topic
	// APIGatewayAccount sets the account's API Gateway CloudWatch Logs role;
	// nil unless the apiGatewayCloudWatchRole context is "true".
	APIGatewayAccount awsapigateway.CfnAccount
}

// NewStreamerStack creates the stack. It panics on an invalid context value.
func NewStreamerStack(scope constructs.Construct, id string, props *StreamerStackProps) *StreamerStack {
	if props == nil {
		props = &StreamerStackProps{}
	}
	stack := awscdk.NewStack(scope, jsii.String(id), &props.StackProps)
	sp := streamer.StreamerConstructProps{}
	if props.Streamer != nil {
		sp = *props.Streamer
	}
	s := &StreamerStack{Stack: stack}

	switch policy := contextString(stack, ContextRemovalPolicy); policy {
	case "", "retain":
	case "destroy":
		if sp.RemovalPolicy == "" {
			sp.RemovalPolicy = awscdk.RemovalPolicy_DESTROY
		}
	default:
		panic(fmt.Sprintf("stacks: context %s %q must be retain or destroy", ContextRemovalPolicy, policy))
	}
	if email := contextString(stack, ContextAlarmEmail); email != "" && sp.AlarmTopic == nil {
		s.AlarmTopic = awssns.NewTopic(stack, jsii.String("AlarmTopic"), &awssns.TopicProps{
			DisplayName: jsii.String("Streamer alarms"),
			EnforceSSL:  jsii.Bool(true),
		})
		s.AlarmTopic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(email), nil))
		cdknag.NagSuppressions_AddResourceSuppressions(s.AlarmTopic, &[]*cdknag.NagPackSuppression{{
			Id: jsii.String("AwsSolutions-SNS2"),
			Reason: jsii.String("CloudWatch alarms cannot publish to a topic encrypted with the AWS-managed SNS key; " +
				"alarm notifications carry only alarm names and states"),
		}}, jsii.Bool(true))
		sp.AlarmTopic = s.AlarmTopic
	}
	s.Streamer = streamer.NewStreamerConstruct(stack, jsii.String("Streamer"), &sp)
	switch v := contextString(stack, ContextAPIGatewayCloudWatchRole); v {
	case "", "false":
	case "true":
		s.APIGatewayAccount = newAPIGatewayAccount(stack)
		s.Streamer.Stage.Node().AddDependency(s.APIGatewayAccount)
	default:
		panic(fmt.Sprintf("stacks: context %s %q must be true or false", ContextAPIGatewayCloudWatchRole, v))
	}
	return s
}

// newAPIGatewayAccount points API Gateway's account settings at a role that
// may write to CloudWatch Logs. The role is retained when the stack goes, so
// other APIs in the account keep logging.
func newAPIGatewayAccount(stack awscdk.Stack) awsapigateway.CfnAccount {
	role := awsiam.NewRole(stack, jsii.String("APIGatewayCloudWatchRole"), &awsiam.RoleProps{
		AssumedBy: awsiam.NewServicePrincipal(jsii.String("apigateway.amazonaws.com"), nil),
		InlinePolicies: &map[string]awsiam.PolicyDocument{
			"PushToCloudWatchLogs": awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{
				Statements: &[]awsiam.PolicyStatement{awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
					Actions: jsii.Strings("logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogGroups",
						"logs:DescribeLogStreams", "logs:PutLogEvents", "logs:GetLogEvents", "logs:FilterLogEvents"),
					Resources: jsii.Strings("*"),
				})},
			}),
		},
	})
	role.ApplyRemovalPolicy(awscdk.RemovalPolicy_RETAIN)
	cdknag.NagSuppressions_AddResourceSuppressions(role, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("API Gateway writes execution and access logs of every API in the account and region " +
			"to log groups it names itself; these are the actions of AmazonAPIGatewayPushToCloudWatchLogs"),
	}}, jsii.Bool(true))
	account := awsapigateway.NewCfnAccount(stack, jsii.String("APIGatewayAccount"), &awsapigateway.CfnAccountProps{
		CloudWatchRoleArn: role.RoleArn(),
	})
	account.Node().AddDependency(role)
	return account
}

func contextString(stack awscdk.Stack, key string) string {
	v := stack.Node().TryGetContext(jsii.String(key))
	if v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}
