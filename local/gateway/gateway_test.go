package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/coder/websocket"
)

// recorder is a router that records its events; $connect is refused unless
// the query carries token=ok.
type recorder struct {
	mu     sync.Mutex
	events []events.APIGatewayWebsocketProxyRequest
}

func (r *recorder) handle(_ context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	if ev.RequestContext.RouteKey == "$connect" && ev.QueryStringParameters["token"] != "ok" {
		return events.APIGatewayProxyResponse{StatusCode: http.StatusUnauthorized}, nil
	}
	return events.APIGatewayProxyResponse{StatusCode: http.StatusOK}, nil
}

func (r *recorder) route(key string) []events.APIGatewayWebsocketProxyRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []events.APIGatewayWebsocketProxyRequest
	for _, ev := range r.events {
		if ev.RequestContext.RouteKey == key {
			out = append(out, ev)
		}
	}
	return out
}

func start(t *testing.T, opts Options) (*recorder, *Gateway, *httptest.Server) {
	t.Helper()
	r := &recorder{}
	g := New(r.handle, opts)
	srv := httptest.NewServer(g)
	t.Cleanup(func() {
		g.Close()
		srv.Close()
	})
	return r, g, srv
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("condition not met")
		}
	}
}

func dial(t *testing.T, srv *httptest.Server, query string) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http")+"/any/path?"+query,
		&websocket.DialOptions{HTTPHeader: http.Header{"X-Multi": {"a", "b"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	return ws
}

func TestEventsLikeAPIGateway(t *testing.T) {
	t.Parallel()
	r, _, srv := start(t, Options{Stage: "dev", APIID: "abc123"})
	if _, resp, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http")+"/?token=bad", nil); err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("refused $connect: got %v, want HTTP 401", err)
	}
	ws := dial(t, srv, "token=ok&x=1&x=2")
	ctx := context.Background()
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"action":"echo"}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(r.route("$default")) == 1 })
	_ = ws.Close(websocket.StatusNormalClosure, "bye")
	waitFor(t, func() bool { return len(r.route("$disconnect")) == 1 })

	conn := r.route("$connect")[1]
	rc := conn.RequestContext
	if rc.EventType != "CONNECT" || rc.Stage != "dev" || rc.APIID != "abc123" || len(rc.ConnectionID) != 16 || rc.RequestID == "" ||
		rc.ConnectedAt == 0 || rc.RequestTimeEpoch == 0 || rc.Identity.SourceIP != "127.0.0.1" || rc.DomainName == "" {
		t.Errorf("$connect request context %+v", rc)
	}
	if conn.QueryStringParameters["x"] != "2" || strings.Join(conn.MultiValueQueryStringParameters["x"], ",") != "1,2" ||
		conn.Headers["X-Multi"] != "a,b" || len(conn.MultiValueHeaders["X-Multi"]) != 2 {
		t.Errorf("$connect query %v %v headers %v %v", conn.QueryStringParameters, conn.MultiValueQueryStringParameters, conn.Headers["X-Multi"], conn.MultiValueHeaders["X-Multi"])
	}
	msgs := r.route("$default")
	if msgs[0].Body != `{"action":"echo"}` || msgs[0].IsBase64Encoded || msgs[0].RequestContext.EventType != "MESSAGE" ||
		msgs[0].RequestContext.ConnectionID != rc.ConnectionID || msgs[0].RequestContext.MessageID == nil {
		t.Errorf("text message event %+v", msgs[0])
	}
	disc := r.route("$disconnect")[0].RequestContext
	if disc.EventType != "DISCONNECT" || disc.ConnectionID != rc.ConnectionID || disc.DisconnectStatusCode != int64(websocket.StatusNormalClosure) {
		t.Errorf("$disconnect request context %+v", disc)
	}
}

// TestBinaryFrameCloses checks a binary frame ends the connection with 1003
// (unsupported data) and never reaches the router, as in API Gateway.
func TestBinaryFrameCloses(t *testing.T) {
	t.Parallel()
	r, _, srv := start(t, Options{})
	ws := dial(t, srv, "token=ok")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageBinary, []byte(`{"action":"echo"}`)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws.Read(ctx); websocket.CloseStatus(err) != websocket.StatusUnsupportedData {
		t.Fatalf("read after a binary frame: %v, want a close with 1003", err)
	}
	waitFor(t, func() bool { return len(r.route("$disconnect")) == 1 })
	if n := len(r.route("$default")); n != 0 {
		t.Errorf("the binary frame reached the router (%d $default events)", n)
	}
	if code := r.route("$disconnect")[0].RequestContext.DisconnectStatusCode; code != int64(websocket.StatusUnsupportedData) {
		t.Errorf("$disconnect status %d, want 1003", code)
	}
}

func TestConnectionsAPI(t *testing.T) {
	t.Parallel()
	r, g, srv := start(t, Options{})
	ws := dial(t, srv, "token=ok")
	waitFor(t, func() bool { return g.Count() == 1 })
	id := r.route("$connect")[0].RequestContext.ConnectionID
	call := func(method, id, body string, signed bool) *http.Response {
		req, _ := http.NewRequest(method, srv.URL+g.ConnectionsPath()+"/@connections/"+id, strings.NewReader(body))
		if signed {
			req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=local/...")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	tests := []struct {
		name, method, id string
		signed           bool
		want             int
	}{
		{"unsigned", http.MethodPost, id, false, http.StatusForbidden},
		{"unknown id", http.MethodPost, "nope", true, http.StatusGone},
		{"post", http.MethodPost, id, true, http.StatusOK},
		{"get", http.MethodGet, id, true, http.StatusOK},
	}
	for _, tt := range tests {
		if got := call(tt.method, tt.id, `{"type":"pong"}`, tt.signed).StatusCode; got != tt.want {
			t.Errorf("%s: got HTTP %d, want %d", tt.name, got, tt.want)
		}
	}
	_, data, err := ws.Read(context.Background())
	if err != nil || string(data) != `{"type":"pong"}` {
		t.Errorf("posted frame %q (%v)", data, err)
	}
	if got := call(http.MethodDelete, id, "", true).StatusCode; got != http.StatusNoContent {
		t.Errorf("delete: HTTP %d", got)
	}
	if _, _, err := ws.Read(context.Background()); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("after delete: %v, want close 1000", err)
	}
	waitFor(t, func() bool { return len(r.route("$disconnect")) == 1 })
	if got := call(http.MethodPost, id, "{}", true).StatusCode; got != http.StatusGone {
		t.Errorf("post after delete: HTTP %d, want 410", got)
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	r, _, srv := start(t, Options{IdleTimeout: 200 * time.Millisecond})
	big := dial(t, srv, "token=ok")
	_ = big.Write(context.Background(), websocket.MessageText, []byte(strings.Repeat("x", MaxMessageBytes+1)))
	if _, _, err := big.Read(context.Background()); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Errorf("oversize message: %v, want close 1009", err)
	}
	idle := dial(t, srv, "token=ok")
	if _, _, err := idle.Read(context.Background()); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("idle connection: %v, want close 1001", err)
	}
	waitFor(t, func() bool { return len(r.route("$disconnect")) == 2 })
	for _, ev := range r.route("$disconnect") {
		b, _ := json.Marshal(ev.RequestContext)
		if ev.RequestContext.DisconnectStatusCode == 0 {
			t.Errorf("$disconnect without a status code: %s", b)
		}
	}
}

// TestCloseEndsReconnects proves Close returns although clients reconnect
// as soon as they are closed (as the Go client does), and that a connection
// whose $connect was running when Close began is closed with its
// $disconnect, not left open.
func TestCloseEndsReconnects(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	connecting, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	g := New(func(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		if ev.RequestContext.RouteKey == "$connect" && ev.QueryStringParameters["slow"] == "1" {
			once.Do(func() { close(connecting) })
			<-release
		}
		return r.handle(ctx, ev)
	}, Options{})
	srv := httptest.NewServer(g)
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var clients sync.WaitGroup
	for range 4 {
		clients.Add(1)
		go func() { // reconnects at once whenever it is closed, until the server refuses
			defer clients.Done()
			for ctx.Err() == nil {
				ws, _, err := websocket.Dial(ctx, url+"?token=ok", nil)
				if err != nil {
					return
				}
				_, _, _ = ws.Read(ctx)
				_ = ws.CloseNow()
			}
		}()
	}
	waitFor(t, func() bool { return g.Count() == 4 })
	slowClosed := make(chan error, 1)
	go func() {
		ws, _, err := websocket.Dial(ctx, url+"?token=ok&slow=1", nil)
		if err == nil {
			_, _, err = ws.Read(ctx)
		}
		slowClosed <- err
	}()
	<-connecting

	closed := make(chan struct{})
	go func() { g.Close(); close(closed) }()
	waitFor(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.closing })
	close(release)
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return while clients reconnected")
	}
	if err := <-slowClosed; websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("connection accepted during Close: %v, want close 1001", err)
	}
	if c, d := len(r.route("$connect")), len(r.route("$disconnect")); c != d {
		t.Errorf("%d $connect events, %d $disconnect: every accepted connection must be disconnected", c, d)
	}
	cancel()
	clients.Wait()
}
