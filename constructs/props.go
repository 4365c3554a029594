package streamer

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
)

// StreamerConstructProps configure a StreamerConstruct. Every field is
// optional; nil props give a working, secure deployment.
type StreamerConstructProps struct {
	// RouterEntry is the directory of the Go main package of the router Lambda,
	// relative to the current working directory (the embedder's module) or
	// absolute. It is built inside the module that contains the working
	// directory, so it can register the embedder's own actions.
	// Default: this module's functions/router, built inside this module.
	RouterEntry *string
	// ProcessorEntry is the directory of the Go main package of the processor
	// Lambda, resolved like RouterEntry.
	// Default: this module's functions/processor, built inside this module.
	ProcessorEntry *string

	// RouterMemoryMiB is the router's memory size.
	// Default: 256 MiB.
	RouterMemoryMiB *float64
	// RouterTimeoutSeconds is the router's timeout; API Gateway stops waiting
	// for an integration after 29 s, so it may not exceed 29.
	// Default: 10 seconds.
	RouterTimeoutSeconds *float64
	// RouterReservedConcurrency reserves (and caps) the router's concurrency.
	// Default: no reservation; the router uses the account's unreserved pool.
	RouterReservedConcurrency *float64
	// ProcessorMemoryMiB is the processor's memory size.
	// Default: 512 MiB.
	ProcessorMemoryMiB *float64
	// ProcessorTimeoutSeconds is the processor's timeout, the longest an action
	// can run in one invocation (1 to 900).
	// Default: 900 seconds (the Lambda maximum).
	ProcessorTimeoutSeconds *float64
	// ProcessorReservedConcurrency reserves (and caps) the processor's
	// concurrency.
	// Default: no reservation; the processor uses the account's unreserved pool.
	ProcessorReservedConcurrency *float64
	// ProcessorConcurrency is how many records of one batch the processor runs
	// at once (STREAMER_PROCESSOR_CONCURRENCY).
	// Default: 10.
	ProcessorConcurrency *float64

	// StreamBatchSize is the most stream records per processor invocation (1 to 10000).
	// Default: 10.
	StreamBatchSize *float64
	// StreamParallelizationFactor is how many batches per shard run at once (1 to 10).
	// Default: 2.
	StreamParallelizationFactor *float64
	// StreamRetryAttempts bounds how often a failing stream batch is retried
	// (0 to 10000) before its records go to the dead-letter queue.
	// Default: 3.
	StreamRetryAttempts *float64
	// StreamMaxRecordAgeSeconds sends stream records older than this to the
	// dead-letter queue instead of processing them (60 to 86400).
	// Default: 3600 seconds (one hour).
	StreamMaxRecordAgeSeconds *float64
	// RetryQueueBatchSize is the most retry-queue messages per processor
	// invocation (1 to 10).
	// Default: 5.
	RetryQueueBatchSize *float64

	// StageName is the name of the WebSocket API stage.
	// Default: "prod".
	StageName *string
	// ThrottlingRateLimit is the stage's steady-state request rate per second.
	// Default: 500 requests per second.
	ThrottlingRateLimit *float64
	// ThrottlingBurstLimit is the stage's burst of requests.
	// Default: 1000 requests.
	ThrottlingBurstLimit *float64

	// EncryptionKey is a customer-managed KMS key for the tables, queues and
	// generated JWT secret.
	// Default: AWS-managed encryption (DynamoDB's AWS-owned key, SQS-managed
	// SSE, Secrets Manager's aws/secretsmanager key).
	EncryptionKey awskms.IKey
	// RemovalPolicy applies to the tables, queues, log groups and the generated
	// JWT secret when they leave the stack.
	// Default: RETAIN, so deleting the stack keeps the data.
	RemovalPolicy awscdk.RemovalPolicy
	// DeletionProtection turns on DynamoDB deletion protection for the tables.
	// Default: on, unless RemovalPolicy is DESTROY.
	DeletionProtection *bool
	// LogRetention is how long the Lambda and access logs are kept.
	// Default: one month.
	LogRetention awslogs.RetentionDays
	// LogLevel is the Lambdas' slog level: debug, info, warn or error.
	// Default: "info".
	LogLevel *string

	// JWTSecret holds the HS256 signing keys as flat JSON ({"kid", "key",
	// "previous_kid", "previous_key"}); the router may only read it. Not
	// allowed together with JWKSURL.
	// Default: when JWKSURL is unset, a new secret with a generated 64-character
	// key and kid "v1"; when JWKSURL is set, no secret.
	JWTSecret awssecretsmanager.ISecret
	// JWKSURL is the https JWKS URL of an identity provider (Cognito, Auth0)
	// whose RS256/ES256 tokens the router accepts instead of HS256 tokens.
	// Default: none; tokens are HS256, signed with JWTSecret.
	JWKSURL *string
	// JWTIssuer is the "iss" claim tokens must carry.
	// Default: the issuer is not checked.
	JWTIssuer *string
	// JWTAudience is the "aud" claim tokens must carry.
	// Default: the audience is not checked.
	JWTAudience *string

	// RateLimitPerSecond is each connection's message rate (burst twice that);
	// 0 turns the limit off.
	// Default: 10 messages per second.
	RateLimitPerSecond *float64
	// TenantMaxInflight caps a tenant's queued and running async requests.
	// Default: 1000.
	TenantMaxInflight *float64
	// TenantMaxConnections caps a tenant's open connections.
	// Default: 1000.
	TenantMaxConnections *float64
	// MaxPayloadBytes caps the size of a message's payload (1 to 131072, API
	// Gateway's message limit).
	// Default: 32768 bytes.
	MaxPayloadBytes *float64
	// SyncTimeoutSeconds is the deadline of sync actions, run inside the router
	// (below RouterTimeoutSeconds).
	// Default: 5 seconds.
	SyncTimeoutSeconds *float64
	// ConnectionTTLSeconds is how long a connection item outlives its last
	// activity (at least 600).
	// Default: 9000 seconds (API Gateway's 2-hour cap plus a margin).
	ConnectionTTLSeconds *float64
	// RequestTTLSeconds is how long a request item and its result are kept
	// (at least 3600).
	// Default: 604800 seconds (7 days).
	RequestTTLSeconds *float64

	// AlarmTopic receives the alarms' ALARM and OK notifications.
	// Default: the alarms have no action (the stack wires one from its
	// "alarmEmail" context).
	AlarmTopic awssns.ITopic
	// ProcessorDurationSLASeconds is the processor p99 duration above which its
	// alarm fires.
	// Default: 60 seconds.
	ProcessorDurationSLASeconds *float64
	// ConnectionLimit is the number of new connections per 5 minutes (API
	// Gateway ConnectCount for this API) at which the connection alarm fires.
	// Default: 10000.
	ConnectionLimit *float64
	// IteratorAgeAlarmSeconds is the age of the oldest unprocessed stream record
	// at which the queue-backup alarm fires.
	// Default: 300 seconds.
	IteratorAgeAlarmSeconds *float64
}

// settings are the props with every default applied.
type settings struct {
	routerEntry, processorEntry                string
	routerMemory, routerTimeout                float64
	routerReserved                             *float64
	processorMemory, processorTimeout          float64
	processorReserved                          *float64
	processorConcurrency                       float64
	streamBatch, streamParallel, streamRetries float64
	streamMaxAge, retryBatch                   float64
	stageName                                  string
	rateLimit, burstLimit                      float64
	removal                                    awscdk.RemovalPolicy
	deletionProtection                         bool
	logRetention                               awslogs.RetentionDays
	logLevel                                   string
	jwksURL, jwtIssuer, jwtAudience            string
	connRate, tenantInflight, tenantConns      float64
	maxPayload, syncTimeout, connTTL, reqTTL   float64
	durationSLA, connectionLimit, iteratorAge  float64
}

func num(v *float64, def float64) float64 {
	if v == nil {
		return def
	}
	return *v
}

func str(v *string, def string) string {
	if v == nil {
		return def
	}
	return *v
}

// resolve applies the defaults. Entries stay empty when defaulted: the module
// directory is looked up only when a default entry is built.
func (p *StreamerConstructProps) resolve() settings {
	if p == nil {
		p = &StreamerConstructProps{}
	}
	s := settings{
		routerEntry:          str(p.RouterEntry, ""),
		processorEntry:       str(p.ProcessorEntry, ""),
		routerMemory:         num(p.RouterMemoryMiB, 256),
		routerTimeout:        num(p.RouterTimeoutSeconds, 10),
		routerReserved:       p.RouterReservedConcurrency,
		processorMemory:      num(p.ProcessorMemoryMiB, 512),
		processorTimeout:     num(p.ProcessorTimeoutSeconds, 900),
		processorReserved:    p.ProcessorReservedConcurrency,
		processorConcurrency: num(p.ProcessorConcurrency, 10),
		streamBatch:          num(p.StreamBatchSize, 10),
		streamParallel:       num(p.StreamParallelizationFactor, 2),
		streamRetries:        num(p.StreamRetryAttempts, 3),
		streamMaxAge:         num(p.StreamMaxRecordAgeSeconds, 3600),
		retryBatch:           num(p.RetryQueueBatchSize, 5),
		stageName:            str(p.StageName, "prod"),
		rateLimit:            num(p.ThrottlingRateLimit, 500),
		burstLimit:           num(p.ThrottlingBurstLimit, 1000),
		removal:              p.RemovalPolicy,
		logRetention:         p.LogRetention,
		logLevel:             str(p.LogLevel, "info"),
		jwksURL:              str(p.JWKSURL, ""),
		jwtIssuer:            str(p.JWTIssuer, ""),
		jwtAudience:          str(p.JWTAudience, ""),
		connRate:             num(p.RateLimitPerSecond, 10),
		tenantInflight:       num(p.TenantMaxInflight, 1000),
		tenantConns:          num(p.TenantMaxConnections, 1000),
		maxPayload:           num(p.MaxPayloadBytes, 32768),
		syncTimeout:          num(p.SyncTimeoutSeconds, 5),
		connTTL:              num(p.ConnectionTTLSeconds, 9000),
		reqTTL:               num(p.RequestTTLSeconds, 604800),
		durationSLA:          num(p.ProcessorDurationSLASeconds, 60),
		connectionLimit:      num(p.ConnectionLimit, 10000),
		iteratorAge:          num(p.IteratorAgeAlarmSeconds, 300),
	}
	if s.removal == "" {
		s.removal = awscdk.RemovalPolicy_RETAIN
	}
	if s.logRetention == "" {
		s.logRetention = awslogs.RetentionDays_ONE_MONTH
	}
	s.deletionProtection = s.removal != awscdk.RemovalPolicy_DESTROY
	if p.DeletionProtection != nil {
		s.deletionProtection = *p.DeletionProtection
	}
	return s
}

var stageNamePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// validate checks the props; its errors are lowercase and name the bad value.
func (p *StreamerConstructProps) validate() error {
	s := p.resolve()
	ranges := []bound{
		{"RouterMemoryMiB", s.routerMemory, 128, 10240, true},
		{"RouterTimeoutSeconds", s.routerTimeout, 1, 29, true},
		{"ProcessorMemoryMiB", s.processorMemory, 128, 10240, true},
		{"ProcessorTimeoutSeconds", s.processorTimeout, 1, 900, true},
		{"ProcessorConcurrency", s.processorConcurrency, 1, 1000, true},
		{"StreamBatchSize", s.streamBatch, 1, 10000, true},
		{"StreamParallelizationFactor", s.streamParallel, 1, 10, true},
		{"StreamRetryAttempts", s.streamRetries, 0, 10000, true},
		{"StreamMaxRecordAgeSeconds", s.streamMaxAge, 60, 86400, true},
		{"RetryQueueBatchSize", s.retryBatch, 1, 10, true},
		{"ThrottlingRateLimit", s.rateLimit, 1, 1e6, false},
		{"ThrottlingBurstLimit", s.burstLimit, 1, 1e6, true},
		{"RateLimitPerSecond", s.connRate, 0, 1e4, false},
		{"TenantMaxInflight", s.tenantInflight, 1, 1e9, true},
		{"TenantMaxConnections", s.tenantConns, 1, 1e9, true},
		{"MaxPayloadBytes", s.maxPayload, 1, 131072, true},
		{"SyncTimeoutSeconds", s.syncTimeout, 1, 28, true},
		{"ConnectionTTLSeconds", s.connTTL, 600, 31536000, true},
		{"RequestTTLSeconds", s.reqTTL, 3600, 31536000, true},
		{"ProcessorDurationSLASeconds", s.durationSLA, 1, 900, false},
		{"ConnectionLimit", s.connectionLimit, 1, 1e9, true},
		{"IteratorAgeAlarmSeconds", s.iteratorAge, 1, 86400, true},
	}
	if p != nil {
		ranges = append(ranges, reservedRanges(p)...)
	}
	for _, r := range ranges {
		if r.v < r.min || r.v > r.max || (r.integer && r.v != float64(int64(r.v))) {
			kind := "a number"
			if r.integer {
				kind = "an integer"
			}
			return fmt.Errorf("%s must be %s from %s to %s, got %s", r.name, kind, itoa(r.min), itoa(r.max), itoa(r.v))
		}
	}
	if s.syncTimeout >= s.routerTimeout {
		return fmt.Errorf("SyncTimeoutSeconds (%g) must be below RouterTimeoutSeconds (%g)", s.syncTimeout, s.routerTimeout)
	}
	if s.durationSLA > s.processorTimeout {
		return fmt.Errorf("ProcessorDurationSLASeconds (%g) must not exceed ProcessorTimeoutSeconds (%g)", s.durationSLA, s.processorTimeout)
	}
	if !stageNamePattern.MatchString(s.stageName) {
		return fmt.Errorf("StageName %q must be 1 to 128 letters, digits, '-' or '_'", s.stageName)
	}
	switch s.logLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("LogLevel %q must be debug, info, warn or error", s.logLevel)
	}
	if s.jwksURL != "" {
		if u, err := url.Parse(s.jwksURL); err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("JWKSURL %q must be an https URL", s.jwksURL)
		}
		if p.JWTSecret != nil {
			return fmt.Errorf("JWTSecret and JWKSURL %q are mutually exclusive", s.jwksURL)
		}
	}
	for _, e := range [][2]string{{"RouterEntry", s.routerEntry}, {"ProcessorEntry", s.processorEntry}} {
		if e[1] == "" {
			continue
		}
		if fi, err := os.Stat(e[1]); err != nil || !fi.IsDir() {
			return fmt.Errorf("%s %q is not a directory (relative to %s)", e[0], e[1], cwd())
		}
	}
	return nil
}

// bound is an allowed range of a numeric prop.
type bound struct {
	name     string
	v        float64
	min, max float64
	integer  bool
}

// reservedRanges bounds the reserved concurrencies that are set.
func reservedRanges(p *StreamerConstructProps) []bound {
	var out []bound
	for _, r := range []struct {
		name string
		v    *float64
	}{{"RouterReservedConcurrency", p.RouterReservedConcurrency}, {"ProcessorReservedConcurrency", p.ProcessorReservedConcurrency}} {
		if r.v != nil {
			out = append(out, bound{r.name, *r.v, 1, 100000, true})
		}
	}
	return out
}

func cwd() string {
	dir, err := os.Getwd()
	if err != nil {
		return "."
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return dir
	}
	return abs
}
