package routing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/golang-jwt/jwt/v5"

	"github.com/streamer-dev/streamer/functions/actions"
	"github.com/streamer-dev/streamer/functions/auth"
	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/functions/connections"
	"github.com/streamer-dev/streamer/functions/connections/connectionstest"
	"github.com/streamer-dev/streamer/functions/demo"
	"github.com/streamer-dev/streamer/functions/metrics"
	"github.com/streamer-dev/streamer/functions/notify"
	"github.com/streamer-dev/streamer/functions/routing"
	"github.com/streamer-dev/streamer/functions/store"
	"github.com/streamer-dev/streamer/internal/ddbtest"
)

var testKey = auth.HMACKey{KID: "k1", Key: []byte("routing-test-key-0123456789abcdefghij")}

// harness is a router on fresh DynamoDB Local tables with a recording
// @connections server.
type harness struct {
	t     testing.TB
	h     *routing.Handler
	build func() *routing.Handler
	store *store.Store
	db    *dynamodb.Client
	conns *connectionstest.Server
	emf   *syncBuffer
}

// syncBuffer collects EMF lines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// metric sums the values of metric name over the EMF records whose
// dimensions include dims.
func (hs *harness) metric(name string, dims map[string]string) float64 {
	hs.emf.mu.Lock()
	defer hs.emf.mu.Unlock()
	sum := 0.0
	for _, line := range strings.Split(strings.TrimSpace(hs.emf.buf.String()), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		v, ok := rec[name].(float64)
		if !ok || rec["Service"] != "router" {
			continue
		}
		match := true
		for k, want := range dims {
			match = match && rec[k] == want
		}
		if match {
			sum += v
		}
	}
	return sum
}

// settings are what options change.
type settings struct {
	cfg   routing.Config
	rate  float64
	store func(*store.Store) routing.Store
}

type option func(*settings)

func withConfig(f func(*routing.Config)) option { return func(s *settings) { f(&s.cfg) } }
func withRate(r float64) option                 { return func(s *settings) { s.rate = r } }

// withStore wraps the store the router uses.
func withStore(wrap func(*store.Store) routing.Store) option {
	return func(s *settings) { s.store = wrap }
}

func newHarness(t testing.TB, opts ...option) *harness {
	t.Helper()
	env := ddbtest.Tables(t)
	st := store.New(env.Client, config.Tables{Connections: env.Tables.Connections, Requests: env.Tables.Requests, Subscriptions: env.Tables.Subscriptions})
	srv := connectionstest.NewServer(t)
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	verifier, err := auth.NewVerifier(context.Background(), auth.Config{HMAC: auth.StaticKeys{testKey}})
	if err != nil {
		t.Fatal(err)
	}
	reg := actions.NewRegistry()
	demo.Register(reg)
	registerTestActions(reg)
	set := settings{cfg: routing.Config{Endpoint: srv.URL}, store: func(st *store.Store) routing.Store { return st }}
	for _, o := range opts {
		o(&set)
	}
	emfOut := &syncBuffer{}
	emf := metrics.New(emfOut, "router")
	notifier := func(ep string) routing.Notifier { return notify.New(connections.New(ep, aws.Config{}), st, logger) }
	build := func() *routing.Handler {
		var limiter routing.Limiter
		if set.rate > 0 {
			limiter = st.NewRateLimiter(set.rate)
		}
		return routing.New(reg, set.store(st), limiter, verifier, notifier, emf, set.cfg, logger)
	}
	return &harness{t: t, h: build(), build: build, store: st, db: env.Client, conns: srv, emf: emfOut}
}

// twin returns a harness with a second router instance (its own caches) on
// the same tables and @connections server, like another Lambda instance.
func (hs *harness) twin() *harness {
	tw := *hs
	tw.h = hs.build()
	return &tw
}

// registerTestActions adds sync actions that misbehave in each way the router
// must contain.
func registerTestActions(reg *actions.Registry) {
	sync := actions.Options{Mode: actions.Sync, Timeout: 200 * time.Millisecond}
	reg.MustRegister("stuck", func(ctx context.Context, _ actions.Request, _ actions.Reporter) (any, error) {
		time.Sleep(2 * time.Second) // ignores ctx
		return "late", nil
	}, sync)
	reg.MustRegister("oops", func(context.Context, actions.Request, actions.Reporter) (any, error) {
		return nil, errors.New("dial tcp 10.0.0.7:5432: connection refused")
	}, sync)
	reg.MustRegister("panics", func(context.Context, actions.Request, actions.Reporter) (any, error) {
		panic("boom")
	}, sync)
	reg.MustRegister("picky", func(context.Context, actions.Request, actions.Reporter) (any, error) {
		return nil, actions.Invalid("name is required")
	}, sync)
	reg.MustRegister("huge", func(context.Context, actions.Request, actions.Reporter) (any, error) {
		return make([]byte, 40<<10), nil
	}, sync)
	reg.MustRegister("unmarshalable", func(context.Context, actions.Request, actions.Reporter) (any, error) {
		return func() {}, nil
	}, sync)
	reg.MustRegister("steps", func(_ context.Context, _ actions.Request, p actions.Reporter) (any, error) {
		p.Report(50, "half", nil)
		return "done", nil
	}, sync)
}

func token(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	base := jwt.MapClaims{"sub": "user-1", "tenant_id": "acme", "permissions": []string{"*"}, "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		if v == nil {
			delete(base, k)
			continue
		}
		base[k] = v
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, base)
	tok.Header["kid"] = testKey.KID
	s, err := tok.SignedString(testKey.Key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func event(eventType, connID string) events.APIGatewayWebsocketProxyRequest {
	var ev events.APIGatewayWebsocketProxyRequest
	ev.RequestContext.EventType = eventType
	ev.RequestContext.ConnectionID = connID
	ev.RequestContext.RouteKey = map[string]string{"CONNECT": "$connect", "DISCONNECT": "$disconnect", "MESSAGE": "$default"}[eventType]
	ev.RequestContext.DomainName = "example.execute-api.eu-west-1.amazonaws.com"
	ev.RequestContext.Stage = "test"
	ev.RequestContext.Identity.SourceIP = "192.0.2.10"
	return ev
}

// connect sends $connect with the token in the query string and returns the status.
func (hs *harness) connect(connID, tok string) int {
	hs.t.Helper()
	ev := event("CONNECT", connID)
	if tok != "" {
		ev.QueryStringParameters = map[string]string{"token": tok}
	}
	resp, err := hs.h.Handle(context.Background(), ev)
	if err != nil {
		hs.t.Fatalf("connect: %v", err)
	}
	return resp.StatusCode
}

// mustConnect connects with a token for tenant and permissions.
func (hs *harness) mustConnect(connID, tenant string, permissions ...string) {
	hs.t.Helper()
	if len(permissions) == 0 {
		permissions = []string{"*"}
	}
	if code := hs.connect(connID, token(hs.t, jwt.MapClaims{"tenant_id": tenant, "permissions": permissions})); code != 200 {
		hs.t.Fatalf("connect %s: status %d", connID, code)
	}
}

// send delivers a $default message and returns the frames posted to the
// connection while handling it.
func (hs *harness) send(connID string, msg any) []map[string]any {
	hs.t.Helper()
	body, ok := msg.(string)
	if !ok {
		b, err := json.Marshal(msg)
		if err != nil {
			hs.t.Fatal(err)
		}
		body = string(b)
	}
	before := len(hs.conns.Posts(connID))
	ev := event("MESSAGE", connID)
	ev.Body = body
	resp, err := hs.h.Handle(context.Background(), ev)
	if err != nil || resp.StatusCode != 200 {
		hs.t.Fatalf("message: %d, %v", resp.StatusCode, err)
	}
	return hs.conns.Frames(hs.t, connID)[before:]
}

// one expects exactly one frame.
func one(t testing.TB, frames []map[string]any) map[string]any {
	t.Helper()
	if len(frames) != 1 {
		t.Fatalf("got %d frames %v, want 1", len(frames), frames)
	}
	return frames[0]
}

func errorCode(f map[string]any) string {
	if f["type"] != "error" {
		return ""
	}
	body, _ := f["error"].(map[string]any)
	code, _ := body["code"].(string)
	return code
}

func errorMessage(f map[string]any) string {
	body, _ := f["error"].(map[string]any)
	msg, _ := body["message"].(string)
	return msg
}
