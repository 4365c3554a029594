// Package gateway plays API Gateway's WebSocket API for the local runtime: it
// accepts WebSocket connections, invokes the router with the same
// events.APIGatewayWebsocketProxyRequest events ($connect, $default,
// $disconnect) and serves the @connections management API (POST, GET, DELETE)
// that the router and processor call with their real SigV4-signed client.
//
// Limits follow API Gateway: a message over 128 KB closes the connection with
// 1009, a connection idle (no message from the client) for 10 minutes is
// closed with 1001, and every connection is closed with 1001 after 2 hours.
// A binary frame closes the connection with 1003 without reaching the router,
// as API Gateway WebSocket APIs do not support binary frames in incoming
// messages.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/coder/websocket"
)

// API Gateway's WebSocket limits.
const (
	// MaxMessageBytes is the largest message a client may send.
	MaxMessageBytes = 128 * 1024
	// DefaultIdleTimeout closes a connection without client messages.
	DefaultIdleTimeout = 10 * time.Minute
	// DefaultMaxLifetime closes every connection after this long.
	DefaultMaxLifetime = 2 * time.Hour
	// MaxConcurrentMessages bounds the router invocations of one
	// connection's messages that run at once; further reads wait.
	MaxConcurrentMessages = 16
	// IntegrationTimeout is API Gateway's limit on one integration call.
	IntegrationTimeout = 29 * time.Second
)

// Handler is the router Lambda's handler.
type Handler func(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error)

// Options configure a Gateway; zero values take API Gateway's defaults.
type Options struct {
	// Stage is the stage name in events and in the @connections path. Default "local".
	Stage string
	// APIID is the API id in events. Default "local".
	APIID string
	// IdleTimeout closes connections without client messages. Default 10 minutes.
	IdleTimeout time.Duration
	// MaxLifetime closes every connection after this long. Default 2 hours.
	MaxLifetime time.Duration
	// Logger receives connection errors.
	Logger *slog.Logger
}

// Gateway is an http.Handler for WebSocket upgrades (any path) and the
// @connections API (/{stage}/@connections/{id}).
type Gateway struct {
	handler Handler
	opts    Options
	mu      sync.Mutex
	conns   map[string]*conn
	// closing is set by Close: no connection is accepted after it, so
	// Close's wait cannot be prolonged by a client that reconnects.
	closing bool
	wg      sync.WaitGroup
}

// conn is one open WebSocket connection.
type conn struct {
	ws          *websocket.Conn
	connectedAt time.Time
	sourceIP    string
	userAgent   string
	mu          sync.Mutex
	lastActive  time.Time
	closed      chan struct{}
	closeOnce   sync.Once
	closeCode   websocket.StatusCode
}

// New returns a Gateway invoking handler.
func New(handler Handler, opts Options) *Gateway {
	if opts.Stage == "" {
		opts.Stage = "local"
	}
	if opts.APIID == "" {
		opts.APIID = "local"
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.MaxLifetime <= 0 {
		opts.MaxLifetime = DefaultMaxLifetime
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Gateway{handler: handler, opts: opts, conns: map[string]*conn{}}
}

// ConnectionsPath is the path prefix of the @connections API: the
// STREAMER_CONNECTIONS_ENDPOINT is the server's URL plus this.
func (g *Gateway) ConnectionsPath() string { return "/" + g.opts.Stage }

// IsWebSocket reports whether r asks for a WebSocket upgrade.
func IsWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// ServeHTTP serves the @connections API and WebSocket upgrades.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if id, ok := strings.CutPrefix(r.URL.Path, g.ConnectionsPath()+"/@connections/"); ok && !IsWebSocket(r) {
		g.serveManagement(w, r, id)
		return
	}
	if !IsWebSocket(r) {
		http.Error(w, "expected a WebSocket upgrade", http.StatusUpgradeRequired)
		return
	}
	g.serveWebSocket(w, r)
}

// Close closes every connection and waits for their $disconnect events.
// From then on, upgrades are refused with 503, as a client that reconnects
// when it is closed would otherwise keep the gateway open.
func (g *Gateway) Close() {
	g.mu.Lock()
	g.closing = true
	g.mu.Unlock()
	g.DisconnectAll()
	g.wg.Wait()
}

// DisconnectAll closes every connection with 1001 (going away), as API
// Gateway does on a deployment or at the 2-hour cap; each gets its
// $disconnect.
func (g *Gateway) DisconnectAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.conns {
		c.close(websocket.StatusGoingAway)
	}
}

// Count returns the number of open connections.
func (g *Gateway) Count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

func (c *conn) close(code websocket.StatusCode) {
	c.closeOnce.Do(func() {
		c.closeCode = code
		close(c.closed)
	})
}

func (c *conn) touch() {
	c.mu.Lock()
	c.lastActive = time.Now()
	c.mu.Unlock()
}

// newID returns a connection id like API Gateway's: 12 random bytes,
// base64url without padding (16 characters).
func newID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// event builds the common part of every event of a connection.
func (g *Gateway) event(r *http.Request, id, route, typ string, c *conn) events.APIGatewayWebsocketProxyRequest {
	now := time.Now()
	ev := events.APIGatewayWebsocketProxyRequest{
		RequestContext: events.APIGatewayWebsocketProxyRequestContext{
			RouteKey:          route,
			EventType:         typ,
			ConnectionID:      id,
			DomainName:        r.Host,
			Stage:             g.opts.Stage,
			APIID:             g.opts.APIID,
			RequestID:         newID(),
			ExtendedRequestID: newID(),
			MessageDirection:  "IN",
			ConnectedAt:       c.connectedAt.UnixMilli(),
			RequestTime:       now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			RequestTimeEpoch:  now.UnixMilli(),
			Identity:          events.APIGatewayRequestIdentity{SourceIP: c.sourceIP, UserAgent: c.userAgent},
		},
	}
	return ev
}

func (g *Gateway) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	// Close waits for every upgrade from here on, $connect included.
	g.mu.Lock()
	if g.closing {
		g.mu.Unlock()
		http.Error(w, `{"message": "Service Unavailable"}`, http.StatusServiceUnavailable)
		return
	}
	g.wg.Add(1)
	g.mu.Unlock()
	defer g.wg.Done()
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	c := &conn{connectedAt: time.Now(), sourceIP: host, userAgent: r.UserAgent(), closed: make(chan struct{})}
	c.lastActive = c.connectedAt
	id := newID()
	ev := g.event(r, id, "$connect", "CONNECT", c)
	ev.Headers, ev.MultiValueHeaders = map[string]string{}, map[string][]string{}
	for name, vals := range r.Header {
		ev.Headers[name] = strings.Join(vals, ",")
		ev.MultiValueHeaders[name] = vals
	}
	if q := r.URL.Query(); len(q) > 0 {
		ev.QueryStringParameters, ev.MultiValueQueryStringParameters = map[string]string{}, map[string][]string(q)
		for k, v := range q {
			ev.QueryStringParameters[k] = v[len(v)-1]
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), IntegrationTimeout)
	resp, err := g.handler(ctx, ev)
	cancel()
	if err != nil {
		g.opts.Logger.ErrorContext(r.Context(), "$connect handler", "connection", id, "error", err)
		http.Error(w, `{"message": "Internal server error"}`, http.StatusInternalServerError)
		return
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		w.WriteHeader(resp.StatusCode)
		_, _ = io.WriteString(w, resp.Body)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true, Subprotocols: subprotocols(r)})
	if err != nil {
		g.opts.Logger.WarnContext(r.Context(), "websocket accept", "connection", id, "error", err)
		g.disconnect(r, id, c, websocket.StatusAbnormalClosure)
		return
	}
	ws.SetReadLimit(MaxMessageBytes)
	c.ws = ws
	g.mu.Lock()
	g.conns[id] = c
	if g.closing {
		// Close began during $connect: the connection ends at once, with
		// its $disconnect.
		c.close(websocket.StatusGoingAway)
	}
	g.mu.Unlock()
	g.run(r, id, c)
}

// subprotocols echoes the client's requested subprotocol, as API Gateway
// leaves it to the $connect response; browsers fail a handshake otherwise.
func subprotocols(r *http.Request) []string {
	if p := r.Header.Get("Sec-WebSocket-Protocol"); p != "" {
		return []string{strings.TrimSpace(strings.Split(p, ",")[0])}
	}
	return nil
}

// run reads messages until the connection ends, then sends $disconnect.
func (g *Gateway) run(r *http.Request, id string, c *conn) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go g.watch(ctx, c)
	go func() {
		select {
		case <-c.closed:
			_ = c.ws.Close(c.closeCode, closeReason(c.closeCode))
			cancel()
		case <-ctx.Done():
		}
	}()
	code := websocket.StatusNoStatusRcvd
	inflight := make(chan struct{}, MaxConcurrentMessages)
	var messages sync.WaitGroup
	for {
		typ, data, err := c.ws.Read(ctx)
		if err != nil {
			code = websocket.CloseStatus(err)
			if code == -1 {
				code = websocket.StatusAbnormalClosure
				if errors.Is(err, websocket.ErrMessageTooBig) || strings.Contains(err.Error(), "read limited") {
					code = websocket.StatusMessageTooBig
				}
			}
			select {
			case <-c.closed:
				code = c.closeCode
			default:
			}
			break
		}
		if typ == websocket.MessageBinary {
			// API Gateway takes no binary frames: it closes the connection
			// with 1003 (unsupported data) and invokes nothing.
			code = websocket.StatusUnsupportedData
			_ = c.ws.Close(code, "Binary frames are not supported")
			break
		}
		c.touch()
		ev := g.event(r, id, "$default", "MESSAGE", c)
		ev.RequestContext.MessageID = newID()
		ev.Body = string(data)
		// Like API Gateway, each message is its own invocation: they run side
		// by side (up to MaxConcurrentMessages per connection).
		inflight <- struct{}{}
		messages.Add(1)
		go func() {
			defer func() { <-inflight; messages.Done() }()
			if err := g.invoke(ev); err != nil {
				g.opts.Logger.ErrorContext(ctx, "$default handler", "connection", id, "error", err)
				_ = g.send(ctx, c, []byte(`{"message": "Internal server error", "connectionId":"`+id+`", "requestId":"`+ev.RequestContext.RequestID+`"}`))
			}
		}()
	}
	messages.Wait() // $disconnect comes after the connection's messages
	g.mu.Lock()
	delete(g.conns, id)
	g.mu.Unlock()
	c.close(code)
	_ = c.ws.CloseNow()
	g.disconnect(r, id, c, code)
}

func closeReason(code websocket.StatusCode) string {
	switch code {
	case websocket.StatusGoingAway:
		return "Going away"
	case websocket.StatusNormalClosure:
		return "Connection closed by the server"
	}
	return ""
}

// watch enforces the idle timeout and the connection's lifetime cap.
func (g *Gateway) watch(ctx context.Context, c *conn) {
	life := time.NewTimer(g.opts.MaxLifetime)
	defer life.Stop()
	tick := time.NewTicker(min(g.opts.IdleTimeout/10, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-life.C:
			c.close(websocket.StatusGoingAway)
			return
		case <-tick.C:
			c.mu.Lock()
			idle := time.Since(c.lastActive)
			c.mu.Unlock()
			if idle >= g.opts.IdleTimeout {
				c.close(websocket.StatusGoingAway)
				return
			}
		}
	}
}

// invoke runs the router on a message like a Lambda invocation: it is not
// cancelled when the connection closes, and it has API Gateway's integration
// timeout.
func (g *Gateway) invoke(ev events.APIGatewayWebsocketProxyRequest) error {
	ctx, cancel := context.WithTimeout(context.Background(), IntegrationTimeout)
	defer cancel()
	_, err := g.handler(ctx, ev)
	return err
}

// disconnect invokes the $disconnect route.
func (g *Gateway) disconnect(r *http.Request, id string, c *conn, code websocket.StatusCode) {
	ctx, cancel := context.WithTimeout(context.Background(), IntegrationTimeout)
	defer cancel()
	ev := g.event(r, id, "$disconnect", "DISCONNECT", c)
	ev.RequestContext.DisconnectStatusCode = int64(code)
	reason := "Client-side close frame status not set"
	if code > 0 {
		reason = fmt.Sprintf("Connection closed with status %d", code)
	}
	ev.RequestContext.DisconnectReason = &reason
	if _, err := g.handler(ctx, ev); err != nil {
		g.opts.Logger.ErrorContext(ctx, "$disconnect handler", "connection", id, "error", err)
	}
}

func (g *Gateway) send(ctx context.Context, c *conn, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return c.ws.Write(ctx, websocket.MessageText, data)
}

// serveManagement answers the @connections API: POST sends the body as a text
// frame, GET describes the connection, DELETE closes it; 410 for unknown ids.
// Requests must carry a SigV4 Authorization header (not verified).
func (g *Gateway) serveManagement(w http.ResponseWriter, r *http.Request, id string) {
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		writeAPIError(w, http.StatusForbidden, "ForbiddenException", "Missing Authentication Token")
		return
	}
	g.mu.Lock()
	c := g.conns[id]
	g.mu.Unlock()
	if c == nil {
		writeAPIError(w, http.StatusGone, "GoneException", "")
		return
	}
	switch r.Method {
	case http.MethodPost:
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxMessageBytes+1))
		if err != nil {
			writeAPIError(w, http.StatusBadRequest, "BadRequestException", "cannot read the body")
			return
		}
		if len(body) > MaxMessageBytes {
			writeAPIError(w, http.StatusRequestEntityTooLarge, "PayloadTooLargeException", "Message too long")
			return
		}
		if err := g.send(r.Context(), c, body); err != nil {
			writeAPIError(w, http.StatusGone, "GoneException", "")
			return
		}
		w.WriteHeader(http.StatusOK)
	case http.MethodGet:
		c.mu.Lock()
		last := c.lastActive
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"connectedAt":  c.connectedAt.UTC().Format(time.RFC3339Nano),
			"lastActiveAt": last.UTC().Format(time.RFC3339Nano),
			"identity":     map[string]string{"sourceIp": c.sourceIP, "userAgent": c.userAgent},
		})
	case http.MethodDelete:
		c.close(websocket.StatusNormalClosure)
		w.WriteHeader(http.StatusNoContent)
	default:
		writeAPIError(w, http.StatusMethodNotAllowed, "MethodNotAllowedException", "method not allowed")
	}
}

func writeAPIError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", typ)
	w.WriteHeader(status)
	var m any
	if msg != "" {
		m = msg
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"message": m})
}
