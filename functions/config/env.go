// Package config names the environment variables that configure the router and
// processor Lambdas, and loads them. The CDK construct sets these variables and
// the local runtime reads the same names, so the two cannot drift.
package config

// Environment variable names. The construct, the Lambdas and the local runtime
// all use these constants; never spell a name out elsewhere.
const (
	// EnvConnectionsTable is the name of the connections table.
	EnvConnectionsTable = "STREAMER_CONNECTIONS_TABLE"
	// EnvRequestsTable is the name of the requests table.
	EnvRequestsTable = "STREAMER_REQUESTS_TABLE"
	// EnvSubscriptionsTable is the name of the subscriptions table.
	EnvSubscriptionsTable = "STREAMER_SUBSCRIPTIONS_TABLE"

	// EnvConnectionsEndpoint is the base URL of the API Gateway @connections API:
	// https://{api-id}.execute-api.{region}.amazonaws.com/{stage}.
	EnvConnectionsEndpoint = "STREAMER_CONNECTIONS_ENDPOINT"

	// EnvRetryQueueURL is the URL of the SQS delay queue that re-triggers due
	// retries and scheduled requests.
	EnvRetryQueueURL = "STREAMER_RETRY_QUEUE_URL"
	// EnvDeadLetterQueueURL is the URL of the dead-letter queue for requests
	// that exhausted their retries.
	EnvDeadLetterQueueURL = "STREAMER_DLQ_URL"

	// EnvJWTSecretARN is the ARN of a Secrets Manager secret holding the HS256
	// signing keys as flat JSON: {"kid": "...", "key": "...", "previous_kid":
	// "...", "previous_key": "..."} (the previous pair is optional, for rotation).
	EnvJWTSecretARN = "STREAMER_JWT_SECRET_ARN"
	// EnvJWTSecret is an HS256 key given directly (the local runtime).
	EnvJWTSecret = "STREAMER_JWT_SECRET"
	// EnvJWKSURL is the JWKS URL for RS256/ES256 tokens (Cognito, Auth0).
	EnvJWKSURL = "STREAMER_JWKS_URL"
	// EnvJWTIssuer is the required "iss" claim, when set.
	EnvJWTIssuer = "STREAMER_JWT_ISSUER"
	// EnvJWTAudience is the required "aud" claim, when set.
	EnvJWTAudience = "STREAMER_JWT_AUDIENCE"

	// EnvRateLimit is the per-connection message rate per second (burst twice
	// that); 0 disables it.
	EnvRateLimit = "STREAMER_RATE_LIMIT"
	// EnvTenantMaxInflight caps a tenant's in-flight async requests.
	EnvTenantMaxInflight = "STREAMER_TENANT_MAX_INFLIGHT"
	// EnvTenantMaxConnections caps a tenant's open connections.
	EnvTenantMaxConnections = "STREAMER_TENANT_MAX_CONNECTIONS"
	// EnvMaxPayloadBytes caps the size of a message's payload.
	EnvMaxPayloadBytes = "STREAMER_MAX_PAYLOAD_BYTES"
	// EnvSyncTimeout is the deadline of sync actions (a Go duration, "5s").
	EnvSyncTimeout = "STREAMER_SYNC_TIMEOUT"
	// EnvConnectionTTL is how long a connection item lives after its last
	// activity (a Go duration; API Gateway's 2 h cap plus a margin).
	EnvConnectionTTL = "STREAMER_CONNECTION_TTL"
	// EnvRequestTTL is how long a request item is kept (a Go duration).
	EnvRequestTTL = "STREAMER_REQUEST_TTL"

	// EnvProcessorConcurrency bounds how many records of one batch run at once.
	EnvProcessorConcurrency = "STREAMER_PROCESSOR_CONCURRENCY"
	// EnvProgressRate caps the progress frames per second per request; faster
	// updates are coalesced (the last one and 100% always go out).
	EnvProgressRate = "STREAMER_PROGRESS_RATE"

	// EnvDynamoDBEndpoint points the DynamoDB client at another endpoint
	// (DynamoDB Local); unset in AWS.
	EnvDynamoDBEndpoint = "DYNAMODB_ENDPOINT"
	// EnvSQSEndpoint points the SQS client at another endpoint (the local
	// runtime's queue); unset in AWS.
	EnvSQSEndpoint = "SQS_ENDPOINT"
	// EnvLogLevel is the slog level: debug, info, warn or error.
	EnvLogLevel = "STREAMER_LOG_LEVEL"

	// EnvAddr is the local runtime's listen address (page, WebSocket endpoint
	// and @connections API); only `make dev` reads it.
	EnvAddr = "STREAMER_ADDR"
	// EnvTablePrefix prefixes the local runtime's table names (default
	// "streamer_"), so several runtimes can share one DynamoDB Local; only
	// `make dev` reads it.
	EnvTablePrefix = "STREAMER_TABLE_PREFIX"
	// EnvProcessorTimeout is the local processor's invocation timeout (a Go
	// duration; default 15m, the deployed processor's), which bounds every
	// run and so its lease; only `make dev` reads it.
	EnvProcessorTimeout = "STREAMER_PROCESSOR_TIMEOUT"
)
