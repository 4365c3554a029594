// Package e2e drives the whole system through the local runtime with real
// WebSocket clients, and checks what the client receives and what DynamoDB
// holds afterwards.
package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/streamer-dev/streamer/client"
	"github.com/streamer-dev/streamer/functions/store"
	"github.com/streamer-dev/streamer/local"
	"github.com/streamer-dev/streamer/local/localtest"
)

// frame is any server frame.
type frame struct {
	Type       string          `json:"type"`
	RequestID  string          `json:"request_id"`
	Status     string          `json:"status"`
	Success    bool            `json:"success"`
	Data       json.RawMessage `json:"data"`
	Result     json.RawMessage `json:"result"`
	Percentage float64         `json:"percentage"`
	Message    string          `json:"message"`
	Error      *struct {
		Code    string         `json:"code"`
		Message string         `json:"message"`
		Details map[string]any `json:"details"`
	} `json:"error"`
}

// conn is a raw WebSocket client, to see every frame as it arrives.
type conn struct {
	t  testing.TB
	ws *websocket.Conn
}

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// connect dials rt with a token for user in tenant.
func connect(t testing.TB, rt *local.Runtime, tenant, user string) *conn {
	t.Helper()
	ws, _, err := websocket.Dial(testCtx(t), rt.WSURL()+"?token="+localtest.Token(t, rt, tenant, user), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	ws.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = ws.CloseNow() })
	return &conn{t: t, ws: ws}
}

// dialStatus returns the HTTP status of a handshake with rawQuery.
func dialStatus(t *testing.T, rt *local.Runtime, rawQuery string, header http.Header) int {
	t.Helper()
	ws, resp, err := websocket.Dial(testCtx(t), rt.WSURL()+rawQuery, &websocket.DialOptions{HTTPHeader: header})
	if err == nil {
		_ = ws.CloseNow()
		return http.StatusSwitchingProtocols
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	return resp.StatusCode
}

func (c *conn) send(msg any) {
	c.t.Helper()
	data, err := json.Marshal(msg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(websocket.MessageText, data)
}

func (c *conn) sendRaw(typ websocket.MessageType, data []byte) {
	c.t.Helper()
	if err := c.ws.Write(testCtx(c.t), typ, data); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next reads the next frame.
func (c *conn) next() frame {
	c.t.Helper()
	f, err := c.read()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

func (c *conn) read() (frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, data, err := c.ws.Read(ctx)
	if err != nil {
		return frame{}, err
	}
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		c.t.Fatalf("frame %s: %v", data, err)
	}
	return f, nil
}

// until reads frames of request id until one of type typ (frames of other
// requests are skipped) and returns them all, the last one of type typ.
func (c *conn) until(id, typ string) []frame {
	c.t.Helper()
	var out []frame
	for {
		f := c.next()
		if f.RequestID != id {
			continue
		}
		out = append(out, f)
		if f.Type == typ {
			return out
		}
	}
}

// message is the protocol's client message.
type message struct {
	Action  string `json:"action"`
	ID      string `json:"id,omitempty"`
	Payload any    `json:"payload,omitempty"`
}

// request reads a request item, failing the test on error.
func request(t *testing.T, rt *local.Runtime, tenant, id string) store.Request {
	t.Helper()
	r, err := rt.Store().GetRequest(context.Background(), tenant, id)
	if err != nil {
		t.Fatalf("get request %s/%s: %v", tenant, id, err)
	}
	return r
}

// eventually polls cond (DynamoDB writes that follow a frame, GSIs).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); !cond(); time.Sleep(25 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s: not so after 30s", what)
		}
	}
}

// tenantConnections counts the tenant's stored connections.
func tenantConnections(t *testing.T, rt *local.Runtime, tenant string) int {
	t.Helper()
	n, err := rt.Store().CountTenantConnections(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func dialClient(t *testing.T, rt *local.Runtime, tenant string, opts *client.Options) *client.Client {
	t.Helper()
	c, err := client.Dial(testCtx(t), rt.WSURL(), localtest.Token(t, rt, tenant, "u-"+tenant), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func errorCode(err error) string {
	var se *client.Error
	if errors.As(err, &se) {
		return se.Code
	}
	return ""
}
