// Command streamer is the CDK app that deploys the Streamer stack:
// npx cdk synth | diff | deploy (see cdk.json).
package main

import (
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/streamer-dev/streamer/stacks"
)

// defaultStackName is the stack name unless the "stackName" context sets
// another, e.g. to deploy a second copy into the same account.
const defaultStackName = "Streamer"

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	name := defaultStackName
	if v, ok := app.Node().TryGetContext(jsii.String("stackName")).(string); ok && v != "" {
		name = v
	}
	stacks.NewStreamerStack(app, name, &stacks.StreamerStackProps{
		StackProps: awscdk.StackProps{
			Description: jsii.String("Streamer: async request processing over API Gateway WebSockets"),
			Env:         env(),
		},
	})
	app.Synth(nil)
}

// env targets the CLI's current account and region when known; otherwise the
// stack is environment-agnostic.
func env() *awscdk.Environment {
	account, region := os.Getenv("CDK_DEFAULT_ACCOUNT"), os.Getenv("CDK_DEFAULT_REGION")
	if account == "" || region == "" {
		return nil
	}
	return &awscdk.Environment{Account: jsii.String(account), Region: jsii.String(region)}
}
