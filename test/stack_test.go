package test

import (
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/streamer-dev/streamer/stacks"
)

func contextStack(t *testing.T, context map[string]any) *stacks.StreamerStack {
	t.Helper()
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir()), Context: &context})
	return stacks.NewStreamerStack(app, "Context", nil)
}

// TestStackContext covers the context switches of the deployable stack:
// the API Gateway CloudWatch role and throwaway (destroy) stacks.
func TestStackContext(t *testing.T) {
	defer failOnPanic(t)
	s := contextStack(t, map[string]any{
		stacks.ContextAPIGatewayCloudWatchRole: "true",
		stacks.ContextRemovalPolicy:            "destroy",
	})
	awscdk.Aspects_Of(s.Stack).Add(cdknag.NewAwsSolutionsChecks(nil), nil)
	tmpl := assertions.Template_FromStack(s.Stack, nil)
	if s.AlarmTopic != nil {
		t.Error("an alarm topic without alarmEmail")
	}
	accountID := *s.GetLogicalId(s.APIGatewayAccount)
	tmpl.HasResourceProperties(jsii.String("AWS::ApiGateway::Account"), map[string]any{
		"CloudWatchRoleArn": map[string]any{"Fn::GetAtt": []any{assertions.Match_StringLikeRegexp(jsii.String("APIGatewayCloudWatchRole")), "Arn"}},
	})
	tmpl.HasResource(jsii.String("AWS::IAM::Role"), map[string]any{
		"DeletionPolicy": "Retain",
		"Properties": assertions.Match_ObjectLike(&map[string]any{
			"AssumeRolePolicyDocument": assertions.Match_ObjectLike(&map[string]any{
				"Statement": []any{assertions.Match_ObjectLike(&map[string]any{
					"Principal": map[string]any{"Service": "apigateway.amazonaws.com"},
				})},
			}),
		}),
	})
	for id, st := range resources(t, tmpl, "AWS::ApiGatewayV2::Stage") {
		deps, _ := st["DependsOn"].([]any)
		if !slices.Contains(deps, any(accountID)) {
			t.Errorf("stage %s does not depend on the API Gateway account settings (%v)", id, deps)
		}
	}
	tmpl.AllResources(jsii.String("AWS::DynamoDB::Table"), map[string]any{"DeletionPolicy": "Delete"})
	errs := assertions.Annotations_FromStack(s.Stack).FindError(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*")))
	for _, e := range *errs {
		t.Errorf("%s: %v", *e.Id, e.Entry.Data)
	}
}

func TestStackContextInvalid(t *testing.T) {
	tests := []struct {
		give map[string]any
		want string
	}{
		{map[string]any{stacks.ContextRemovalPolicy: "snapshot"}, `context removalPolicy "snapshot" must be retain or destroy`},
		{map[string]any{stacks.ContextAPIGatewayCloudWatchRole: "yes"}, `context apiGatewayCloudWatchRole "yes" must be true or false`},
	}
	for _, tt := range tests {
		got := mustPanic(t, func() { contextStack(t, tt.give) })
		if !strings.Contains(got, tt.want) {
			t.Errorf("panic = %q, want %q", got, tt.want)
		}
	}
}
