package streamer

import (
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
)

func f(v float64) *float64 { return &v }
func sp(v string) *string  { return &v }

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		give *StreamerConstructProps
		want string // "" for valid props
	}{
		{"nil props", nil, ""},
		{"zero props", &StreamerConstructProps{}, ""},
		{"tuned props", &StreamerConstructProps{RouterTimeoutSeconds: f(29), SyncTimeoutSeconds: f(20), StreamBatchSize: f(100),
			LogLevel: sp("debug"), JWKSURL: sp("https://example.com/.well-known/jwks.json"), RouterEntry: sp(".")}, ""},
		{"router memory too small", &StreamerConstructProps{RouterMemoryMiB: f(64)}, "RouterMemoryMiB must be an integer from 128 to 10240, got 64"},
		{"router timeout too long", &StreamerConstructProps{RouterTimeoutSeconds: f(60)}, "RouterTimeoutSeconds must be an integer from 1 to 29, got 60"},
		{"processor timeout above the Lambda limit", &StreamerConstructProps{ProcessorTimeoutSeconds: f(901)}, "ProcessorTimeoutSeconds must be an integer from 1 to 900, got 901"},
		{"fractional batch size", &StreamerConstructProps{StreamBatchSize: f(2.5)}, "StreamBatchSize must be an integer from 1 to 10000, got 2.5"},
		{"parallelization factor", &StreamerConstructProps{StreamParallelizationFactor: f(0)}, "StreamParallelizationFactor must be an integer from 1 to 10, got 0"},
		{"negative retries", &StreamerConstructProps{StreamRetryAttempts: f(-1)}, "StreamRetryAttempts must be an integer from 0 to 10000, got -1"},
		{"record age too short", &StreamerConstructProps{StreamMaxRecordAgeSeconds: f(30)}, "StreamMaxRecordAgeSeconds must be an integer from 60 to 86400, got 30"},
		{"retry batch too big", &StreamerConstructProps{RetryQueueBatchSize: f(11)}, "RetryQueueBatchSize must be an integer from 1 to 10, got 11"},
		{"payload above API Gateway's message size", &StreamerConstructProps{MaxPayloadBytes: f(200000)}, "MaxPayloadBytes must be an integer from 1 to 131072, got 200000"},
		{"reserved concurrency zero", &StreamerConstructProps{ProcessorReservedConcurrency: f(0)}, "ProcessorReservedConcurrency must be an integer from 1 to 100000, got 0"},
		{"sync timeout not below router timeout", &StreamerConstructProps{SyncTimeoutSeconds: f(10)}, "SyncTimeoutSeconds (10) must be below RouterTimeoutSeconds (10)"},
		{"SLA above processor timeout", &StreamerConstructProps{ProcessorTimeoutSeconds: f(30), ProcessorDurationSLASeconds: f(60)}, "ProcessorDurationSLASeconds (60) must not exceed ProcessorTimeoutSeconds (30)"},
		{"stage name with a space", &StreamerConstructProps{StageName: sp("my stage")}, `StageName "my stage" must be 1 to 128 letters, digits, '-' or '_'`},
		{"log level", &StreamerConstructProps{LogLevel: sp("trace")}, `LogLevel "trace" must be debug, info, warn or error`},
		{"JWKS over http", &StreamerConstructProps{JWKSURL: sp("http://example.com/jwks")}, `JWKSURL "http://example.com/jwks" must be an https URL`},
		{"connection TTL too short", &StreamerConstructProps{ConnectionTTLSeconds: f(60)}, "ConnectionTTLSeconds must be an integer from 600 to 31536000, got 60"},
		{"processor entry missing", &StreamerConstructProps{ProcessorEntry: sp("./missing")}, `ProcessorEntry "./missing" is not a directory`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.give.validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestResolveDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name               string
		give               *StreamerConstructProps
		wantRemoval        awscdk.RemovalPolicy
		wantDeletionProtec bool
	}{
		{"nil props retain and protect", nil, awscdk.RemovalPolicy_RETAIN, true},
		{"destroy turns protection off", &StreamerConstructProps{RemovalPolicy: awscdk.RemovalPolicy_DESTROY}, awscdk.RemovalPolicy_DESTROY, false},
		{"explicit protection wins", &StreamerConstructProps{RemovalPolicy: awscdk.RemovalPolicy_DESTROY, DeletionProtection: new(true)}, awscdk.RemovalPolicy_DESTROY, true},
	}
	for _, tt := range tests {
		got := tt.give.resolve()
		if got.removal != tt.wantRemoval || got.deletionProtection != tt.wantDeletionProtec {
			t.Errorf("%s: removal %v, protection %v; want %v, %v", tt.name, got.removal, got.deletionProtection, tt.wantRemoval, tt.wantDeletionProtec)
		}
	}
}
