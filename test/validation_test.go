package test

import (
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/jsii-runtime-go"

	streamer "github.com/streamer-dev/streamer/constructs"
)

// TestInvalidPropsPanic checks that each invalid prop stops the synth with a
// message naming the value; a case that does not panic fails.
func TestInvalidPropsPanic(t *testing.T) {
	tests := []struct {
		name string
		give func(scope awscdk.Stack) *streamer.StreamerConstructProps
		want string
	}{
		{"router timeout above API Gateway's 29 s", func(awscdk.Stack) *streamer.StreamerConstructProps {
			return &streamer.StreamerConstructProps{RouterTimeoutSeconds: jsii.Number(30)}
		}, "RouterTimeoutSeconds must be an integer from 1 to 29, got 30"},
		{"parallelization factor", func(awscdk.Stack) *streamer.StreamerConstructProps {
			return &streamer.StreamerConstructProps{StreamParallelizationFactor: jsii.Number(11)}
		}, "StreamParallelizationFactor must be an integer from 1 to 10, got 11"},
		{"stage name", func(awscdk.Stack) *streamer.StreamerConstructProps {
			return &streamer.StreamerConstructProps{StageName: jsii.String("prod stage")}
		}, `StageName "prod stage"`},
		{"missing router entry", func(awscdk.Stack) *streamer.StreamerConstructProps {
			return &streamer.StreamerConstructProps{RouterEntry: jsii.String("./no/such/dir")}
		}, `RouterEntry "./no/such/dir" is not a directory`},
		{"secret and JWKS together", func(stack awscdk.Stack) *streamer.StreamerConstructProps {
			secret := awssecretsmanager.Secret_FromSecretNameV2(stack, jsii.String("Imported"), jsii.String("keys"))
			return &streamer.StreamerConstructProps{JWTSecret: secret, JWKSURL: jsii.String("https://idp.example.com/jwks.json")}
		}, "JWTSecret and JWKSURL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stack := awscdk.NewStack(awscdk.NewApp(nil), jsii.String("Invalid"), nil)
			props := tt.give(stack)
			got := mustPanic(t, func() { streamer.NewStreamerConstruct(stack, jsii.String("Streamer"), props) })
			if !strings.Contains(got, tt.want) {
				t.Errorf("panic = %q, want it to contain %q", got, tt.want)
			}
		})
	}
}
