package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamer-dev/streamer/client"
	"github.com/streamer-dev/streamer/functions/protocol"
	"github.com/streamer-dev/streamer/functions/store"
	"github.com/streamer-dev/streamer/local"
	"github.com/streamer-dev/streamer/local/gateway"
	"github.com/streamer-dev/streamer/local/localtest"
)

func dial(t *testing.T, rt *local.Runtime, tenant string, opts *client.Options) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, rt.WSURL(), localtest.Token(t, rt, tenant, "alice"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// stored reads a request item as the router and processor do.
func stored(t *testing.T, rt *local.Runtime, tenant, id string) store.Request {
	t.Helper()
	r, err := rt.Store().GetRequest(context.Background(), tenant, id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRequest(t *testing.T) {
	t.Parallel()
	rt := localtest.Shared(t)
	tenant := localtest.Tenant("client-request")
	c := dial(t, rt, tenant, nil)
	ctx := testCtx(t)

	got, err := c.Request(ctx, "echo", map[string]string{"hello": "world"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"echo":{"hello":"world"}}`; string(got) != want {
		t.Errorf("echo: got %s, want %s", got, want)
	}

	var seen []float64
	got, err = c.Request(ctx, "delay", map[string]any{"seconds": 0.3, "steps": 3}, func(p client.Progress) { seen = append(seen, p.Percentage) },
		client.WithID("delay-1"))
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Steps int `json:"steps"`
	}
	if err := json.Unmarshal(got, &res); err != nil || res.Steps != 3 {
		t.Errorf("delay result %s (%v)", got, err)
	}
	if len(seen) == 0 || seen[len(seen)-1] != 100 || !slices.IsSorted(seen) {
		t.Errorf("progress %v, want increasing to 100", seen)
	}
	if r := stored(t, rt, tenant, "delay-1"); r.Status != store.StatusCompleted || string(r.Result) != string(got) {
		t.Errorf("stored %s %s, want COMPLETED %s", r.Status, r.Result, got)
	}
}

func TestErrorsCarryTheCode(t *testing.T) {
	t.Parallel()
	rt := localtest.Shared(t)
	c := dial(t, rt, localtest.Tenant("client-errors"), nil)
	ctx := testCtx(t)
	tests := []struct {
		name, action string
		payload      any
		want         string
	}{
		{"unknown action", "no_such_action", nil, protocol.CodeValidation},
		{"bad payload", "delay", map[string]any{"seconds": "x"}, protocol.CodeValidation},
		{"permanent failure", "fail", map[string]any{"permanent": true}, ""},
	}
	for _, tt := range tests {
		_, err := c.Request(ctx, tt.action, tt.payload, nil)
		var se *client.Error
		if !errors.As(err, &se) {
			t.Errorf("%s: got %v, want a *client.Error", tt.name, err)
			continue
		}
		if tt.want != "" && se.Code != tt.want {
			t.Errorf("%s: got code %s, want %s", tt.name, se.Code, tt.want)
		}
	}
	if _, err := c.Status(ctx, "never-sent"); !isCode(err, protocol.CodeNotFound) {
		t.Errorf("status of an unknown request: %v", err)
	}
}

func isCode(err error, code string) bool {
	var se *client.Error
	return errors.As(err, &se) && se.Code == code
}

func TestDialRefused(t *testing.T) {
	t.Parallel()
	rt := localtest.Shared(t)
	_, err := client.Dial(testCtx(t), rt.WSURL(), "not-a-token", nil)
	var he *client.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized {
		t.Errorf("got %v, want a 401 HandshakeError", err)
	}
}

func TestSubscribeStatusCancel(t *testing.T) {
	t.Parallel()
	rt := localtest.Shared(t)
	tenant := localtest.Tenant("client-sub")
	owner, watcher := dial(t, rt, tenant, nil), dial(t, rt, tenant, nil)
	ctx := testCtx(t)

	done := make(chan error, 1)
	go func() {
		_, err := owner.Request(ctx, "delay", map[string]any{"seconds": 30, "steps": 30}, nil, client.WithID("long-1"))
		done <- err
	}()
	waitFor(t, func() bool {
		st, err := watcher.Status(ctx, "long-1")
		return err == nil && st.Status == string(store.StatusProcessing)
	})
	sub := make(chan error, 1)
	go func() {
		_, err := watcher.Subscribe(ctx, "long-1", nil)
		sub <- err
	}()
	time.Sleep(100 * time.Millisecond) // let the subscription land before the cancel
	if err := watcher.Cancel(ctx, "long-1"); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]chan error{"owner": done, "subscriber": sub} {
		if err := <-ch; !isCode(err, protocol.CodeCancelled) {
			t.Errorf("%s: got %v, want CANCELLED", name, err)
		}
	}
	if r := stored(t, rt, tenant, "long-1"); r.Status != store.StatusCancelled {
		t.Errorf("stored status %s, want CANCELLED", r.Status)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); !cond(); time.Sleep(25 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("condition not met in 30s")
		}
	}
}

func TestReconnectResumesInFlightRequests(t *testing.T) {
	t.Parallel()
	rt := localtest.Start(t, local.Options{})
	tenant := localtest.Tenant("client-reconnect")
	c := dial(t, rt, tenant, &client.Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	ctx := testCtx(t)

	var progress []float64
	done := make(chan error, 1)
	var result json.RawMessage
	go func() {
		var err error
		result, err = c.Request(ctx, "delay", map[string]any{"seconds": 1.5, "steps": 5}, func(p client.Progress) { progress = append(progress, p.Percentage) },
			client.WithID("resume-1"))
		done <- err
	}()
	waitFor(t, func() bool {
		r, err := rt.Store().GetRequest(context.Background(), tenant, "resume-1")
		return err == nil && r.Status == store.StatusProcessing
	})
	rt.DisconnectAll()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c.Reconnects() < 1 {
		t.Errorf("reconnects %d, want at least 1", c.Reconnects())
	}
	r := stored(t, rt, tenant, "resume-1")
	if r.Status != store.StatusCompleted || r.Attempt != 1 || string(r.Result) != string(result) {
		t.Errorf("stored %s attempt %d result %s; want COMPLETED once with %s", r.Status, r.Attempt, r.Result, result)
	}
	if len(progress) == 0 || progress[len(progress)-1] != 100 {
		t.Errorf("progress %v, want it to reach 100 on the new connection", progress)
	}
}

func TestKeepAliveAndConnectionAge(t *testing.T) {
	t.Parallel()
	rt := localtest.Start(t, local.Options{Gateway: gateway.Options{IdleTimeout: time.Second}})
	ctx := testCtx(t)
	pinging := dial(t, rt, "client-alive", &client.Options{PingInterval: 100 * time.Millisecond})
	silent := dial(t, rt, "client-alive", &client.Options{PingInterval: time.Hour, MinBackoff: 10 * time.Millisecond})
	aging := dial(t, rt, "client-alive", &client.Options{PingInterval: 100 * time.Millisecond, MaxConnectionAge: 300 * time.Millisecond, MinBackoff: 10 * time.Millisecond})

	waitFor(t, func() bool { return silent.Reconnects() >= 1 && aging.Reconnects() >= 2 })
	if n := pinging.Reconnects(); n != 0 {
		t.Errorf("a pinging client reconnected %d times; the idle timeout must not close it", n)
	}
	for name, c := range map[string]*client.Client{"pinging": pinging, "silent": silent, "aging": aging} {
		if _, err := c.Request(ctx, "echo", map[string]int{"n": 1}, nil); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestReconnectStopsOnARefusedToken(t *testing.T) {
	t.Parallel()
	rt := localtest.Start(t, local.Options{})
	tenant := localtest.Tenant("client-expired")
	expired := func(context.Context) (string, error) { return rt.Token(tenant, "alice", -time.Minute) }
	c := dial(t, rt, tenant, &client.Options{Token: expired, MinBackoff: 10 * time.Millisecond})
	ctx := testCtx(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.Request(ctx, "delay", map[string]any{"seconds": 30, "steps": 30}, nil, client.WithID("orphan"))
		done <- err
	}()
	waitFor(t, func() bool {
		r, err := rt.Store().GetRequest(context.Background(), tenant, "orphan")
		return err == nil && r.Status == store.StatusProcessing
	})
	rt.DisconnectAll()
	err := <-done
	var he *client.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized {
		t.Fatalf("got %v, want the reconnect's 401 HandshakeError", err)
	}
	if _, err := c.Request(ctx, "echo", nil, nil); !errors.As(err, &he) {
		t.Errorf("a call after the client stopped: %v, want the same error", err)
	}
}

// TestDialErrorHidesTheToken: a dial that fails before the handshake (no
// server) returns an error, logged on reconnects, without the token in it;
// the underlying *url.Error is still there.
func TestDialErrorHidesTheToken(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	const token = "header.claims.signature-that-must-stay-secret"
	_, err = client.Dial(context.Background(), "ws://"+addr+"/", token, nil)
	var ue *url.Error
	switch {
	case err == nil:
		t.Fatal("dial to a closed port succeeded")
	case strings.Contains(err.Error(), "signature-that-must-stay-secret"):
		t.Errorf("dial error holds the token: %v", err)
	case !errors.As(err, &ue) || !strings.Contains(ue.URL, "token=REDACTED"):
		t.Errorf("dial error %v lost its *url.Error or its redacted URL", err)
	}
}
