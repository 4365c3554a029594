// Package routing is the router Lambda's handler: it answers API Gateway
// WebSocket events. $connect verifies the client's token and stores the
// connection; $disconnect removes it; every message on $default is validated,
// authorized, rate limited and then run inline (sync actions and the built-in
// actions) or stored for the processor and acknowledged (async actions).
// Every frame to the client goes through @connections, so the local runtime
// and API Gateway behave the same.
package routing

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamer-dev/streamer/functions/actions"
	"github.com/streamer-dev/streamer/functions/auth"
	"github.com/streamer-dev/streamer/functions/connections"
	"github.com/streamer-dev/streamer/functions/metrics"
	"github.com/streamer-dev/streamer/functions/notify"
	"github.com/streamer-dev/streamer/functions/protocol"
	"github.com/streamer-dev/streamer/functions/store"
)

// Store is the storage the router needs (*store.Store).
type Store interface {
	PutConnection(ctx context.Context, c store.Connection, maxPerTenant int) error
	GetConnection(ctx context.Context, id string) (store.Connection, error)
	TouchConnection(ctx context.Context, id string, ttl time.Duration) error
	RemoveConnection(ctx context.Context, id string) (store.Connection, error)
	CreateRequest(ctx context.Context, r store.Request, maxInflight int, extra ...types.TransactWriteItem) (store.Request, bool, error)
	GetRequest(ctx context.Context, tenantID, id string) (store.Request, error)
	CancelRequest(ctx context.Context, tenantID, id string) (store.Request, error)
	PutSubscription(ctx context.Context, sub store.Subscription) error
	DeleteSubscription(ctx context.Context, connectionID, requestKey string) (bool, error)
	UnsubscribeSubmitter(ctx context.Context, requestKey, connectionID string) (bool, error)
}

// Limiter is the per-connection rate limiter (*store.RateLimiter).
type Limiter interface {
	Take(ctx context.Context, connectionID string) (store.Admission, error)
	Reserve(connectionID string) (store.Reservation, bool)
	Forget(connectionID string)
}

// Verifier checks $connect tokens (*auth.Verifier).
type Verifier interface {
	Verify(ctx context.Context, token string) (auth.Identity, error)
}

// Notifier delivers frames (*notify.Notifier).
type Notifier interface {
	Send(ctx context.Context, connectionID string, frame any) error
	Broadcast(ctx context.Context, a notify.Audience, eventType string, frame any) (int, error)
}

// Metrics emits CloudWatch metrics (*metrics.Writer).
type Metrics interface {
	Emit(dims map[string]string, ms ...metrics.Metric) error
}

// Metric and dimension names the router emits (namespace Streamer, dimension
// Service=router on each).
const (
	MetricConnects       = "Connects"       // by TenantID
	MetricConnectRefused = "ConnectRefused" // by Reason: unauthorized, tenant_limit
	MetricDisconnects    = "Disconnects"    // by TenantID
	MetricMessages       = "Messages"       // by Action
	MetricLatency        = "RouterLatency"  // by Action, milliseconds
	MetricErrors         = "Errors"         // by Code
	MetricRateLimited    = "RateLimited"    // by Scope: connection, tenant

	DimTenant = "TenantID"
	DimAction = "Action"
	DimCode   = "Code"
	DimReason = "Reason"
	DimScope  = "Scope"
)

// Config holds the router's limits; zero fields take the defaults.
type Config struct {
	// Endpoint is the @connections endpoint; empty derives it from each
	// event's domain name and stage.
	Endpoint string
	// MaxPayloadBytes caps a message's payload. Default: 64 KB.
	MaxPayloadBytes int
	// SyncTimeout caps the deadline of sync actions; an action registered
	// with a shorter Timeout keeps it. Default: 5 s.
	SyncTimeout time.Duration
	// TenantMaxInflight caps a tenant's unfinished async requests. Default: 1000.
	TenantMaxInflight int
	// TenantMaxConnections caps a tenant's open connections; 0 means no cap.
	TenantMaxConnections int
	// ConnectionTTL is how long a connection item lives after connect or the
	// last ping. Default: 2 h 10 min (API Gateway's 2 h cap plus a margin).
	ConnectionTTL time.Duration
	// RequestTTL is how long request items are kept. Default: 7 days.
	RequestTTL time.Duration
}

// Defaults.
const (
	DefaultTenantMaxInflight = 1000
	DefaultConnectionTTL     = 2*time.Hour + 10*time.Minute
	DefaultRequestTTL        = 7 * 24 * time.Hour
	// MaxPriority is the highest request priority; 0 is the default and lowest.
	MaxPriority = store.MaxPriority
)

func (c Config) withDefaults() Config {
	if c.MaxPayloadBytes == 0 {
		c.MaxPayloadBytes = protocol.DefaultMaxPayloadBytes
	}
	if c.SyncTimeout == 0 {
		c.SyncTimeout = actions.DefaultSyncTimeout
	}
	if c.TenantMaxInflight == 0 {
		c.TenantMaxInflight = DefaultTenantMaxInflight
	}
	if c.ConnectionTTL == 0 {
		c.ConnectionTTL = DefaultConnectionTTL
	}
	if c.RequestTTL == 0 {
		c.RequestTTL = DefaultRequestTTL
	}
	return c
}

// Handler answers WebSocket events. It is safe for concurrent use.
type Handler struct {
	reg      *actions.Registry
	store    Store
	limiter  Limiter // nil: no rate limit
	verifier Verifier
	notifier func(endpoint string) Notifier
	metrics  Metrics
	cfg      Config
	logger   *slog.Logger
	now      func() time.Time

	mu        sync.Mutex
	notifiers map[string]Notifier
	conns     map[string]cachedConn // used when there is no limiter
}

type cachedConn struct {
	conn    store.Connection
	fetched time.Time
}

// connCacheTTL bounds how long a connection read is reused without a limiter.
const connCacheTTL = time.Minute

// New returns a router handler. notifier builds the notifier of an
// @connections endpoint (called once per endpoint); limiter may be nil to
// disable rate limiting.
func New(reg *actions.Registry, st Store, limiter Limiter, verifier Verifier, notifier func(endpoint string) Notifier, m Metrics, cfg Config, logger *slog.Logger) *Handler {
	return &Handler{
		reg: reg, store: st, limiter: limiter, verifier: verifier, notifier: notifier, metrics: m,
		cfg: cfg.withDefaults(), logger: logger, now: time.Now,
		notifiers: map[string]Notifier{}, conns: map[string]cachedConn{},
	}
}

// Handle answers one API Gateway WebSocket event.
func (h *Handler) Handle(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	rc := ev.RequestContext
	log := h.logger.With("connection_id", rc.ConnectionID, "route", rc.RouteKey)
	switch rc.EventType {
	case "CONNECT":
		return h.connect(ctx, ev, log), nil
	case "DISCONNECT":
		return h.disconnect(ctx, ev, log), nil
	case "MESSAGE":
		h.message(ctx, ev, log)
		return events.APIGatewayProxyResponse{StatusCode: http.StatusOK}, nil
	}
	log.WarnContext(ctx, "unknown event type", "event_type", rc.EventType)
	return events.APIGatewayProxyResponse{StatusCode: http.StatusBadRequest}, nil
}

func (h *Handler) connect(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest, log *slog.Logger) events.APIGatewayProxyResponse {
	rc := ev.RequestContext
	id, err := h.verifier.Verify(ctx, auth.TokenFromRequest(ev.QueryStringParameters, ev.Headers))
	switch {
	case errors.Is(err, auth.ErrUnauthorized):
		log.InfoContext(ctx, "connect refused", "reason", err.Error())
		h.count(MetricConnectRefused, DimReason, "unauthorized")
		return status(http.StatusUnauthorized)
	case err != nil:
		log.ErrorContext(ctx, "connect: verify token", "error", err)
		return status(http.StatusInternalServerError)
	}
	log = log.With("tenant", id.TenantID, "user_id", id.UserID)
	now := h.now()
	conn := store.Connection{
		ConnectionID: rc.ConnectionID,
		UserID:       id.UserID,
		TenantID:     id.TenantID,
		Permissions:  id.Permissions,
		Endpoint:     h.endpoint(ev),
		ConnectedAt:  now.UnixMilli(),
		LastPing:     now.UnixMilli(),
		Metadata:     connMetadata(rc.Identity.SourceIP, rc.Identity.UserAgent),
		TTL:          now.Add(h.cfg.ConnectionTTL).Unix(),
	}
	switch err := h.store.PutConnection(ctx, conn, h.cfg.TenantMaxConnections); {
	case errors.Is(err, store.ErrTenantConnectionLimit):
		log.WarnContext(ctx, "connect refused: tenant connection limit", "limit", h.cfg.TenantMaxConnections)
		h.count(MetricConnectRefused, DimReason, "tenant_limit")
		return status(http.StatusForbidden)
	case err != nil:
		log.ErrorContext(ctx, "connect: store connection", "error", err)
		return status(http.StatusInternalServerError)
	}
	log.InfoContext(ctx, "connected")
	h.count(MetricConnects, DimTenant, id.TenantID)
	return status(http.StatusOK)
}

func connMetadata(sourceIP, userAgent string) map[string]string {
	md := map[string]string{}
	if sourceIP != "" {
		md["source_ip"] = sourceIP
	}
	if userAgent != "" {
		md["user_agent"] = userAgent
	}
	if len(md) == 0 {
		return nil
	}
	return md
}

func (h *Handler) disconnect(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest, log *slog.Logger) events.APIGatewayProxyResponse {
	id := ev.RequestContext.ConnectionID
	if h.limiter != nil {
		h.limiter.Forget(id)
	}
	h.mu.Lock()
	delete(h.conns, id)
	h.mu.Unlock()
	conn, err := h.store.RemoveConnection(ctx, id)
	if err != nil {
		log.ErrorContext(ctx, "disconnect: remove connection", "error", err)
		return status(http.StatusInternalServerError)
	}
	log.InfoContext(ctx, "disconnected", "tenant", conn.TenantID, "reason", ev.RequestContext.DisconnectReason)
	if conn.TenantID != "" {
		h.count(MetricDisconnects, DimTenant, conn.TenantID)
	}
	return status(http.StatusOK)
}

// count emits one Count metric with one dimension. Metrics are best effort:
// a failure is logged, never surfaced.
func (h *Handler) count(name, dim, value string) {
	h.emit(map[string]string{dim: value}, metrics.Metric{Name: name, Unit: metrics.Count, Value: 1})
}

func (h *Handler) emit(dims map[string]string, ms ...metrics.Metric) {
	if err := h.metrics.Emit(dims, ms...); err != nil {
		h.logger.Warn("emit metrics", "error", err)
	}
}

func status(code int) events.APIGatewayProxyResponse {
	return events.APIGatewayProxyResponse{StatusCode: code}
}

// endpoint is the configured @connections endpoint or the event's own.
func (h *Handler) endpoint(ev events.APIGatewayWebsocketProxyRequest) string {
	if h.cfg.Endpoint != "" {
		return h.cfg.Endpoint
	}
	return connections.EndpointFor(ev.RequestContext.DomainName, ev.RequestContext.Stage)
}

func (h *Handler) notifierFor(ev events.APIGatewayWebsocketProxyRequest) Notifier {
	ep := h.endpoint(ev)
	h.mu.Lock()
	defer h.mu.Unlock()
	n, ok := h.notifiers[ep]
	if !ok {
		n = h.notifier(ep)
		h.notifiers[ep] = n
	}
	return n
}

// admit returns the caller's connection and, with a rate limit, how long the
// caller must wait before this message would be admitted (0: admitted).
func (h *Handler) admit(ctx context.Context, connectionID string) (store.Admission, error) {
	if h.limiter != nil {
		return h.limiter.Take(ctx, connectionID)
	}
	now := h.now()
	h.mu.Lock()
	c, ok := h.conns[connectionID]
	h.mu.Unlock()
	if ok && now.Sub(c.fetched) < connCacheTTL {
		return store.Admission{Connection: c.conn}, nil
	}
	conn, err := h.store.GetConnection(ctx, connectionID)
	if err != nil {
		return store.Admission{}, err
	}
	h.mu.Lock()
	if len(h.conns) >= 10000 {
		clear(h.conns)
	}
	h.conns[connectionID] = cachedConn{conn: conn, fetched: now}
	h.mu.Unlock()
	return store.Admission{Connection: conn}, nil
}
