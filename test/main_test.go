// Package test holds Streamer's infrastructure tests: a golden snapshot,
// fine-grained assertions, cdk-nag checks, validation and embedding.
package test

import (
	"os"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/streamer-dev/streamer/stacks"
)

// alarmEmail is the stack context that wires the alarms to a topic.
const alarmEmail = "ops@example.com"

// synthesized is the one stack every assertion shares: synthesizing it is the
// slow part of these tests.
type synthesized struct {
	stack    *stacks.StreamerStack
	template assertions.Template
	nag      assertions.Annotations
}

var (
	shared     synthesized
	sharedOnce sync.Once
)

// streamerStack synthesizes the deployable stack once, with cdk-nag's
// AwsSolutions checks applied and an alarm e-mail in the context.
func streamerStack(t *testing.T) synthesized {
	t.Helper()
	sharedOnce.Do(func() {
		app := awscdk.NewApp(&awscdk.AppProps{
			Outdir:  jsii.String(os.TempDir() + "/streamer-test-cdk.out"),
			Context: &map[string]any{stacks.ContextAlarmEmail: alarmEmail},
		})
		s := stacks.NewStreamerStack(app, "Streamer", nil)
		awscdk.Aspects_Of(s.Stack).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
		shared = synthesized{
			stack:    s,
			template: assertions.Template_FromStack(s.Stack, nil),
			nag:      assertions.Annotations_FromStack(s.Stack),
		}
	})
	if shared.stack == nil {
		t.Fatal("the shared stack failed to synthesize (see the first failure)")
	}
	return shared
}

func TestMain(m *testing.M) {
	code := m.Run()
	jsii.Close()
	os.Exit(code)
}
