// Package store is Streamer's DynamoDB storage layer: connections, requests,
// subscriptions and the per-tenant counters behind the limits. Every status
// change is one conditional UpdateItem; no hot path scans.
package store

// Status is the state of an async request.
type Status string

// Request states. PENDING → PROCESSING → COMPLETED | FAILED | RETRYING
// (→ PROCESSING again) ; PENDING, RETRYING or PROCESSING → CANCELLED.
// COMPLETED, FAILED and CANCELLED are final: a final request never changes again.
const (
	StatusPending    Status = "PENDING"
	StatusProcessing Status = "PROCESSING"
	StatusRetrying   Status = "RETRYING"
	StatusCompleted  Status = "COMPLETED"
	StatusFailed     Status = "FAILED"
	StatusCancelled  Status = "CANCELLED"
)

// Final reports whether s is a final state.
func (s Status) Final() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCancelled
}

// Connection is one open WebSocket connection. Times are epoch milliseconds;
// TTL is epoch seconds.
type Connection struct {
	ConnectionID string            `dynamodbav:"ConnectionID"`
	UserID       string            `dynamodbav:"UserID"`
	TenantID     string            `dynamodbav:"TenantID"`
	Permissions  []string          `dynamodbav:"Permissions,stringset,omitempty"`
	Endpoint     string            `dynamodbav:"Endpoint"`
	ConnectedAt  int64             `dynamodbav:"ConnectedAt"`
	LastPing     int64             `dynamodbav:"LastPing"`
	Metadata     map[string]string `dynamodbav:"Metadata,omitempty"`
	TTL          int64             `dynamodbav:"TTL"`
}

// ErrorInfo is a request's error as clients see it: a protocol error code and
// a message safe to show.
type ErrorInfo struct {
	Code    string `dynamodbav:"Code" json:"code"`
	Message string `dynamodbav:"Message" json:"message"`
}

// Request is an async request. Payload, Result and Checkpoint hold JSON text.
// CreatedAt, ProcessAfter, ProcessedAt, ProgressAt and LeaseExpiresAt are epoch
// milliseconds; TTL is epoch seconds. ProcessAfter is set only while the request
// waits to run (PENDING or RETRYING), so the priority-queue index holds exactly
// the queued work.
//
// RequestID, the table key, is RequestKey(TenantID, ID): ids are chosen by
// clients, so the key is scoped by tenant. Two tenants may use the same id, and
// a lookup by another tenant's id finds nothing.
type Request struct {
	RequestID    string            `dynamodbav:"RequestID"`
	ID           string            `dynamodbav:"ID"`
	ConnectionID string            `dynamodbav:"ConnectionID"`
	TenantID     string            `dynamodbav:"TenantID"`
	UserID       string            `dynamodbav:"UserID"`
	Status       Status            `dynamodbav:"Status"`
	CreatedAt    int64             `dynamodbav:"CreatedAt"`
	Action       string            `dynamodbav:"Action"`
	Payload      string            `dynamodbav:"Payload,omitempty"`
	Metadata     map[string]string `dynamodbav:"Metadata,omitempty"`
	Priority     int               `dynamodbav:"Priority"`
	ProcessAfter int64             `dynamodbav:"ProcessAfter,omitempty"`

	// Attempt counts runs started (claims); RetryCount counts failed runs
	// that were scheduled again.
	Attempt    int `dynamodbav:"Attempt"`
	RetryCount int `dynamodbav:"RetryCount"`

	LeaseOwner     string `dynamodbav:"LeaseOwner,omitempty"`
	LeaseExpiresAt int64  `dynamodbav:"LeaseExpiresAt,omitempty"`

	Progress        float64 `dynamodbav:"Progress"`
	ProgressMessage string  `dynamodbav:"ProgressMessage,omitempty"`
	ProgressAt      int64   `dynamodbav:"ProgressAt,omitempty"`
	Checkpoint      string  `dynamodbav:"Checkpoint,omitempty"`

	// SubmitterUnsubscribed is set when the submitting connection unsubscribed:
	// until then it follows the request without a subscription item.
	SubmitterUnsubscribed bool `dynamodbav:"SubmitterUnsubscribed,omitempty"`

	Result      string     `dynamodbav:"Result,omitempty"`
	Error       *ErrorInfo `dynamodbav:"Error,omitempty"`
	ProcessedAt int64      `dynamodbav:"ProcessedAt,omitempty"`
	TTL         int64      `dynamodbav:"TTL"`
}

// Submitter is the connection that submitted the request while it follows the
// request implicitly (every event type), or "" once it unsubscribed. Saving a
// subscription item on submission would cost a write on the hot path.
func (r Request) Submitter() string {
	if r.SubmitterUnsubscribed {
		return ""
	}
	return r.ConnectionID
}

// Subscription links a connection to a request whose events it receives. Its
// id is SubscriptionKey(ConnectionID, RequestID), so subscribing is idempotent.
type Subscription struct {
	SubscriptionID string   `dynamodbav:"SubscriptionID"`
	ConnectionID   string   `dynamodbav:"ConnectionID"`
	RequestID      string   `dynamodbav:"RequestID"`
	TenantID       string   `dynamodbav:"TenantID"`
	EventTypes     []string `dynamodbav:"EventTypes,stringset,omitempty"`
	CreatedAt      int64    `dynamodbav:"CreatedAt"`
	TTL            int64    `dynamodbav:"TTL"`
}

// SubscriptionKey is the id of connectionID's subscription to requestID.
func SubscriptionKey(connectionID, requestID string) string {
	return connectionID + "#" + requestID
}

// RequestKey is the table key of the request with client-visible id in tenantID.
// Tenant ids never contain '#' (the auth layer rejects such tokens).
func RequestKey(tenantID, id string) string {
	return tenantID + "#" + id
}

// Tenant counters live in the connections table under TenantCounterKey(tenant):
// AttrTenantConnections counts open connections and AttrTenantInflight the
// tenant's async requests that are not final. They back the per-tenant limits,
// which must hold across Lambda instances; every change is a conditional update
// (the router increments, the final transition of a request decrements in the
// same transaction). The counter item has no TenantID attribute, so it stays out
// of the tenant-connections index.
const (
	AttrTenantConnections = "TenantConnections"
	AttrTenantInflight    = "Inflight"
)

// TenantCounterKey is the connections-table key of tenantID's counters.
func TenantCounterKey(tenantID string) string {
	return "tenant#" + tenantID
}
