package routing_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/golang-jwt/jwt/v5"

	"github.com/streamer-dev/streamer/functions/routing"
	"github.com/streamer-dev/streamer/functions/store"
	"github.com/streamer-dev/streamer/internal/ddblocal"
	"github.com/streamer-dev/streamer/internal/ddbtest"
)

func TestConnect(t *testing.T) {
	t.Parallel()
	hs := newHarness(t, withConfig(func(c *routing.Config) { c.TenantMaxConnections = 1 }))
	tests := []struct {
		name      string
		conn      string
		give      string
		wantCode  int
		wantStore bool
	}{
		{"valid", "c1", token(t, nil), 200, true},
		{"no token", "c2", "", 401, false},
		{"garbage token", "c3", "abc.def.ghi", 401, false},
		{"expired", "c4", token(t, jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix()}), 401, false},
		{"no tenant", "c5", token(t, jwt.MapClaims{"tenant_id": nil}), 401, false},
		{"no sub", "c6", token(t, jwt.MapClaims{"sub": nil}), 401, false},
		{"over the tenant limit", "c7", token(t, nil), 403, false},
		{"other tenant", "c8", token(t, jwt.MapClaims{"tenant_id": "globex"}), 200, true},
		{"repeated and empty permissions", "c9", token(t, jwt.MapClaims{"tenant_id": "initech", "permissions": []string{"echo", "", "echo"}}), 200, true},
	}
	for _, tt := range tests { // in order: the limit depends on earlier rows
		if got := hs.connect(tt.conn, tt.give); got != tt.wantCode {
			t.Errorf("%s: status %d, want %d", tt.name, got, tt.wantCode)
		}
		c, err := hs.store.GetConnection(context.Background(), tt.conn)
		if stored := err == nil; stored != tt.wantStore {
			t.Errorf("%s: stored = %v (%v), want %v", tt.name, stored, err, tt.wantStore)
		}
		if tt.wantStore && (c.UserID != "user-1" || c.Metadata["source_ip"] != "192.0.2.10" || c.TTL <= time.Now().Add(2*time.Hour).Unix() || c.Endpoint != hs.conns.URL) {
			t.Errorf("%s: stored %+v", tt.name, c)
		}
	}
}

func TestConnectWithAuthorizationHeader(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	ev := event("CONNECT", "c1")
	ev.Headers = map[string]string{"Authorization": "Bearer " + token(t, nil)}
	resp, err := hs.h.Handle(context.Background(), ev)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("connect with header: %d, %v", resp.StatusCode, err)
	}
}

func TestDisconnect(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	hs.mustConnect("c1", "acme")
	hs.send("c1", map[string]any{"action": "delay", "id": "r1", "payload": map[string]any{"seconds": 1}})
	resp, err := hs.h.Handle(context.Background(), event("DISCONNECT", "c1"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("disconnect: %d, %v", resp.StatusCode, err)
	}
	if _, err := hs.store.GetConnection(context.Background(), "c1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("connection after disconnect: %v", err)
	}
	if subs, _ := hs.store.RequestSubscriptions(context.Background(), store.RequestKey("acme", "r1")); len(subs) != 0 {
		t.Errorf("subscriptions after disconnect: %v", subs)
	}
	if conns, _, _ := hs.store.TenantCounters(context.Background(), "acme"); conns != 0 {
		t.Errorf("tenant connections after disconnect = %d, want 0", conns)
	}
	// A message on a connection the store does not know is refused.
	if f := one(t, hs.send("c1", `{"action":"ping"}`)); errorCode(f) != "UNAUTHORIZED" {
		t.Errorf("message after disconnect = %v, want UNAUTHORIZED", f)
	}
}

func TestPing(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	hs.mustConnect("c1", "acme")
	before, _ := hs.store.GetConnection(context.Background(), "c1")
	time.Sleep(5 * time.Millisecond) // LastPing has millisecond resolution
	f := one(t, hs.send("c1", `{"action":"ping","id":"p1"}`))
	if f["type"] != "pong" || f["request_id"] != "p1" {
		t.Errorf("ping answered %v, want a pong for p1", f)
	}
	after, _ := hs.store.GetConnection(context.Background(), "c1")
	if after.LastPing <= before.LastPing {
		t.Errorf("LastPing %d not after %d", after.LastPing, before.LastPing)
	}
}

func TestInvalidMessages(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	hs.mustConnect("c1", "acme", "echo", "delay")
	tests := []struct {
		name     string
		give     string
		wantCode string
		wantID   any
		wantText string
	}{
		{"not json", `hello`, "VALIDATION_ERROR", nil, "JSON object"},
		{"no action", `{"id":"m1"}`, "VALIDATION_ERROR", "m1", "action is required"},
		{"payload not object", `{"action":"echo","id":"m2","payload":[1]}`, "VALIDATION_ERROR", "m2", "payload must be a JSON object"},
		{"payload too large", `{"action":"delay","id":"m3","payload":{"x":"` + strings.Repeat("y", 70<<10) + `"}}`, "VALIDATION_ERROR", "m3", "more than the limit"},
		{"unknown action", `{"action":"nope","id":"m4"}`, "VALIDATION_ERROR", "m4", `unknown action "nope"`},
		{"not permitted", `{"action":"generate_report","id":"m5"}`, "UNAUTHORIZED", "m5", "not permitted"},
		{"bad priority", `{"action":"delay","id":"m6","metadata":{"priority":12}}`, "VALIDATION_ERROR", "m6", "priority"},
		{"bad process_after", `{"action":"delay","id":"m7","metadata":{"process_after":"tomorrow"}}`, "VALIDATION_ERROR", "m7", "process_after"},
		{"status without request id", `{"action":"status","id":"m8","payload":{}}`, "VALIDATION_ERROR", "m8", "request_id is required"},
		{"status of a missing request", `{"action":"status","id":"m9","payload":{"request_id":"zzz"}}`, "NOT_FOUND", "m9", "zzz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := one(t, hs.send("c1", tt.give))
			if errorCode(f) != tt.wantCode || f["request_id"] != tt.wantID || !strings.Contains(errorMessage(f), tt.wantText) {
				t.Errorf("frame %v, want %s for %v containing %q", f, tt.wantCode, tt.wantID, tt.wantText)
			}
		})
	}
	// Nothing was stored for any of them.
	for _, id := range []string{"m3", "m6", "m7"} {
		if _, err := hs.store.GetRequest(context.Background(), "acme", id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("request %s stored after a refusal: %v", id, err)
		}
	}
	if _, inflight, _ := hs.store.TenantCounters(context.Background(), "acme"); inflight != 0 {
		t.Errorf("inflight = %d after refusals, want 0", inflight)
	}
}

func TestBinaryFrameRefused(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	hs.mustConnect("c1", "acme")
	ev := event("MESSAGE", "c1")
	ev.Body, ev.IsBase64Encoded = "AAEC", true
	if _, err := hs.h.Handle(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if f := one(t, hs.conns.Frames(t, "c1")); errorCode(f) != "VALIDATION_ERROR" || !strings.Contains(errorMessage(f), "binary") {
		t.Errorf("binary frame answered %v", f)
	}
}

func TestSyncActions(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	hs.mustConnect("c1", "acme")
	tests := []struct {
		name     string
		give     string
		wantType string
		wantCode string
		wantText string
	}{
		{"echo", `{"action":"echo","id":"e1","payload":{"hello":"world"}}`, "response", "", ""},
		{"timeout", `{"action":"stuck","id":"e2"}`, "error", "TIMEOUT", "did not finish within 200ms"},
		{"user error", `{"action":"picky","id":"e3"}`, "error", "VALIDATION_ERROR", "name is required"},
		{"internal error hides details", `{"action":"oops","id":"e4"}`, "error", "INTERNAL_ERROR", "internal error"},
		{"panic", `{"action":"panics","id":"e5"}`, "error", "INTERNAL_ERROR", "internal error"},
		{"too large for a frame", `{"action":"huge","id":"e6"}`, "error", "INTERNAL_ERROR", "frame limit"},
		{"result not JSON", `{"action":"unmarshalable","id":"e9"}`, "error", "INTERNAL_ERROR", "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := one(t, hs.send("c1", tt.give))
			if f["type"] != tt.wantType || errorCode(f) != tt.wantCode || !strings.Contains(errorMessage(f), tt.wantText) {
				t.Errorf("frame %v, want %s %s %q", f, tt.wantType, tt.wantCode, tt.wantText)
			}
			if strings.Contains(errorMessage(f), "10.0.0.7") || strings.Contains(errorMessage(f), "boom") {
				t.Errorf("frame leaks internals: %v", f)
			}
		})
	}
	f := one(t, hs.send("c1", `{"action":"echo","id":"e7","payload":{"a":[1,2]}}`))
	if f["request_id"] != "e7" || f["success"] != true || f["data"].(map[string]any)["echo"].(map[string]any)["a"] == nil {
		t.Errorf("echo response %v", f)
	}
	frames := hs.send("c1", `{"action":"steps","id":"e8"}`)
	if len(frames) != 2 || frames[0]["type"] != "progress" || frames[0]["percentage"] != 50.0 || frames[1]["type"] != "response" {
		t.Errorf("sync progress frames %v, want progress then response", frames)
	}
}

func TestSubmit(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	hs.mustConnect("c1", "acme")
	hs.mustConnect("c2", "acme")
	ctx := context.Background()
	after := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	f := one(t, hs.send("c1", map[string]any{"action": "delay", "id": "r1", "payload": map[string]any{"seconds": 1},
		"metadata": map[string]any{"priority": 7, "process_after": after.Format(time.RFC3339Nano), "trace": "x"}}))
	if f["type"] != "acknowledgment" || f["request_id"] != "r1" || f["status"] != "queued" {
		t.Fatalf("ack %v", f)
	}
	r, err := hs.store.GetRequest(ctx, "acme", "r1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != store.StatusPending || r.Priority != 7 || r.ProcessAfter != after.UnixMilli() || r.Payload != `{"seconds":1}` ||
		r.ConnectionID != "c1" || r.UserID != "user-1" || r.Attempt != 0 || r.TTL <= time.Now().Add(24*time.Hour).Unix() || r.Metadata["trace"] != "x" {
		t.Errorf("stored request %+v", r)
	}
	if subs, _ := hs.store.RequestSubscriptions(ctx, r.RequestID); r.Submitter() != "c1" || len(subs) != 0 {
		t.Errorf("submitter %q, subscription items %+v; want c1 following without an item", r.Submitter(), subs)
	}

	// The same id again, from another connection: no new work, the existing
	// request's ack, and the new connection follows it.
	f = one(t, hs.send("c2", `{"action":"delay","id":"r1","payload":{"seconds":5}}`))
	if f["type"] != "acknowledgment" || f["request_id"] != "r1" || !strings.Contains(f["message"].(string), "duplicate") {
		t.Errorf("duplicate answered %v", f)
	}
	if again, _ := hs.store.GetRequest(ctx, "acme", "r1"); again.Payload != `{"seconds":1}` || again.CreatedAt != r.CreatedAt {
		t.Errorf("duplicate changed the request: %+v", again)
	}
	if subs, _ := hs.store.RequestSubscriptions(ctx, r.RequestID); len(subs) != 1 || subs[0].ConnectionID != "c2" {
		t.Errorf("subscriptions after resubmit = %+v, want c2's", subs)
	}
	if _, inflight, _ := hs.store.TenantCounters(ctx, "acme"); inflight != 1 {
		t.Errorf("inflight = %d, want 1", inflight)
	}
	if f := one(t, hs.send("c1", `{"action":"fail","id":"r1"}`)); errorCode(f) != "VALIDATION_ERROR" || !strings.Contains(errorMessage(f), "already used") {
		t.Errorf("same id, other action: %v", f)
	}

	// Without an id one is generated.
	f = one(t, hs.send("c1", `{"action":"fail"}`))
	id, _ := f["request_id"].(string)
	if f["type"] != "acknowledgment" || len(id) != 36 {
		t.Fatalf("ack without id %v", f)
	}
	if _, err := hs.store.GetRequest(ctx, "acme", id); err != nil {
		t.Errorf("generated id %s not stored: %v", id, err)
	}
}

func TestStatusSubscribeCancel(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	hs.mustConnect("c1", "acme")
	hs.mustConnect("c2", "acme")
	hs.mustConnect("x1", "globex")
	one(t, hs.send("c1", `{"action":"delay","id":"r1","payload":{"seconds":1}}`))

	f := one(t, hs.send("c1", `{"action":"status","id":"s1","payload":{"request_id":"r1"}}`))
	data, _ := f["data"].(map[string]any)
	if f["type"] != "response" || f["request_id"] != "s1" || data["request_id"] != "r1" || data["status"] != "PENDING" || data["action"] != "delay" {
		t.Errorf("status %v", f)
	}
	for _, action := range []string{"status", "subscribe", "cancel", "unsubscribe"} {
		f := one(t, hs.send("x1", `{"action":"`+action+`","id":"o1","payload":{"request_id":"r1"}}`))
		if errorCode(f) != "NOT_FOUND" || f["request_id"] != "o1" {
			t.Errorf("%s from another tenant: %v, want NOT_FOUND", action, f)
		}
	}
	f = one(t, hs.send("c2", `{"action":"subscribe","id":"s2","payload":{"request_id":"r1","event_types":["complete"]}}`))
	if f["type"] != "response" || f["success"] != true || f["data"].(map[string]any)["subscribed"] != true {
		t.Errorf("subscribe %v", f)
	}

	frames := hs.send("c1", `{"action":"cancel","id":"k1","payload":{"request_id":"r1"}}`)
	if len(frames) != 2 || frames[0]["type"] != "response" || frames[0]["request_id"] != "k1" || frames[1]["type"] != "complete" {
		t.Fatalf("cancel frames %v, want a response and the complete frame", frames)
	}
	if frames[1]["success"] != false || frames[1]["error"].(map[string]any)["code"] != "CANCELLED" || frames[1]["request_id"] != "r1" {
		t.Errorf("complete frame %v, want a CANCELLED failure", frames[1])
	}
	c2 := hs.conns.Frames(t, "c2")
	if last := c2[len(c2)-1]; last["type"] != "complete" || last["request_id"] != "r1" {
		t.Errorf("subscriber's last frame %v, want the complete frame", last)
	}
	if _, inflight, _ := hs.store.TenantCounters(context.Background(), "acme"); inflight != 0 {
		t.Errorf("inflight = %d after cancel, want 0", inflight)
	}
	if f := one(t, hs.send("c1", `{"action":"cancel","id":"k2","payload":{"request_id":"r1"}}`)); errorCode(f) != "VALIDATION_ERROR" || !strings.Contains(errorMessage(f), "CANCELLED") {
		t.Errorf("second cancel %v", f)
	}

	// Subscribing to a finished request sends its final frame at once.
	frames = hs.send("c2", `{"action":"subscribe","id":"s3","payload":{"request_id":"r1"}}`)
	if len(frames) != 2 || frames[0]["type"] != "response" || frames[1]["type"] != "complete" {
		t.Errorf("subscribe to a finished request: %v", frames)
	}
	f = one(t, hs.send("c2", `{"action":"unsubscribe","id":"u1","payload":{"request_id":"r1"}}`))
	if f["type"] != "response" || f["data"].(map[string]any)["subscribed"] != false {
		t.Errorf("unsubscribe %v", f)
	}
	if subs, _ := hs.store.RequestSubscriptions(context.Background(), store.RequestKey("acme", "r1")); len(subs) != 0 {
		t.Errorf("subscriptions after unsubscribe = %v, want none (c1 follows as the submitter)", subs)
	}
	// The submitter unsubscribes from its implicit subscription.
	if f := one(t, hs.send("c1", `{"action":"unsubscribe","id":"u2","payload":{"request_id":"r1"}}`)); f["type"] != "response" {
		t.Errorf("submitter unsubscribe %v", f)
	}
	if r, err := hs.store.GetRequest(context.Background(), "acme", "r1"); err != nil || r.Submitter() != "" {
		t.Errorf("submitter after unsubscribing = %q, %v; want none", r.Submitter(), err)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	hs := newHarness(t, withRate(1)) // 1/s, burst 2
	hs.mustConnect("c1", "acme")
	var codes []string
	var last map[string]any
	for range 3 {
		last = one(t, hs.send("c1", `{"action":"ping","id":"p"}`))
		codes = append(codes, errorCode(last))
	}
	if codes[0] != "" || codes[1] != "" || codes[2] != "RATE_LIMITED" {
		t.Fatalf("codes %q, want two pongs then RATE_LIMITED", codes)
	}
	ms, _ := last["error"].(map[string]any)["details"].(map[string]any)["retry_after_ms"].(float64)
	if ms <= 0 || ms > 1000 || last["request_id"] != "p" {
		t.Errorf("rate-limited frame %v, want retry_after_ms in (0, 1000] and the request id", last)
	}
}

func TestTenantInflightLimit(t *testing.T) {
	t.Parallel()
	hs := newHarness(t, withConfig(func(c *routing.Config) { c.TenantMaxInflight = 1 }))
	hs.mustConnect("c1", "acme")
	one(t, hs.send("c1", `{"action":"delay","id":"r1","payload":{"seconds":1}}`))
	f := one(t, hs.send("c1", `{"action":"delay","id":"r2","payload":{"seconds":1}}`))
	if errorCode(f) != "RATE_LIMITED" || f["request_id"] != "r2" {
		t.Errorf("second request %v, want RATE_LIMITED", f)
	}
	if _, err := hs.store.GetRequest(context.Background(), "acme", "r2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refused request stored: %v", err)
	}
}

func TestGoneConnectionIsRemoved(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	hs.mustConnect("c1", "acme")
	hs.conns.SetGone("c1")
	hs.send("c1", `{"action":"ping"}`)
	if _, err := hs.store.GetConnection(context.Background(), "c1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("gone connection still stored: %v", err)
	}
}

func TestRateLimitAcrossInstances(t *testing.T) {
	t.Parallel()
	a := newHarness(t, withRate(1)) // 1/s, burst 2
	b := a.twin()
	a.mustConnect("c1", "acme")
	// Each instance admits one ping, using the burst of 2 between them.
	for _, hs := range []*harness{a, b} {
		if f := one(t, hs.send("c1", `{"action":"ping"}`)); f["type"] != "pong" {
			t.Fatalf("ping %v", f)
		}
	}
	// Instance a's cache is stale: its async fast path must not admit.
	f := one(t, a.send("c1", `{"action":"delay","id":"r1","payload":{"seconds":1}}`))
	if errorCode(f) != "RATE_LIMITED" || f["request_id"] != "r1" {
		t.Errorf("third message %v, want RATE_LIMITED", f)
	}
	if _, err := a.store.GetRequest(context.Background(), "acme", "r1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("rate-limited request stored: %v", err)
	}
}

func TestRateLimitOnAsyncFastPath(t *testing.T) {
	t.Parallel()
	hs := newHarness(t, withRate(1))
	hs.mustConnect("c1", "acme")
	one(t, hs.send("c1", `{"action":"ping"}`)) // warms the limiter's cache
	if f := one(t, hs.send("c1", `{"action":"delay","id":"r1","payload":{"seconds":1}}`)); f["type"] != "acknowledgment" {
		t.Fatalf("second message %v, want an acknowledgment", f)
	}
	if f := one(t, hs.send("c1", `{"action":"delay","id":"r2","payload":{"seconds":1}}`)); errorCode(f) != "RATE_LIMITED" {
		t.Errorf("third message %v, want RATE_LIMITED", f)
	}
	// The fast path charged the table, not only the cache: a fresh instance agrees.
	if f := one(t, hs.twin().send("c1", `{"action":"ping"}`)); errorCode(f) != "RATE_LIMITED" {
		t.Errorf("fresh instance %v, want RATE_LIMITED", f)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	hs := newHarness(t, withRate(1))
	hs.mustConnect("c1", "acme")
	hs.connect("c2", "")
	one(t, hs.send("c1", `{"action":"echo","payload":{}}`))
	one(t, hs.send("c1", `{"action":"no-such-action"}`))
	one(t, hs.send("c1", `{"action":"ping"}`)) // over the burst of 2
	one(t, hs.send("c1", `[]`))
	if _, err := hs.h.Handle(context.Background(), event("DISCONNECT", "c1")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dims map[string]string
		want float64
	}{
		{routing.MetricConnects, map[string]string{routing.DimTenant: "acme"}, 1},
		{routing.MetricConnectRefused, map[string]string{routing.DimReason: "unauthorized"}, 1},
		{routing.MetricDisconnects, map[string]string{routing.DimTenant: "acme"}, 1},
		{routing.MetricMessages, map[string]string{routing.DimAction: "echo"}, 1},
		{routing.MetricMessages, map[string]string{routing.DimAction: "unknown"}, 1},
		{routing.MetricMessages, map[string]string{routing.DimAction: "invalid"}, 1},
		{routing.MetricErrors, map[string]string{routing.DimCode: "VALIDATION_ERROR"}, 2},
		{routing.MetricErrors, map[string]string{routing.DimCode: "RATE_LIMITED"}, 1},
		{routing.MetricRateLimited, map[string]string{routing.DimScope: "connection"}, 1},
	}
	for _, tt := range tests {
		if got := hs.metric(tt.name, tt.dims); got != tt.want {
			t.Errorf("%s %v = %v, want %v", tt.name, tt.dims, got, tt.want)
		}
	}
	if hs.metric(routing.MetricLatency, map[string]string{routing.DimAction: "echo"}) <= 0 {
		t.Error("no RouterLatency for echo")
	}
}

// finishingStore completes the request while the router stores a
// subscription to it, as a processor finishing at that moment would.
type finishingStore struct {
	*store.Store
	db    *dynamodb.Client
	table string
}

func (f finishingStore) PutSubscription(ctx context.Context, sub store.Subscription) error {
	if err := f.Store.PutSubscription(ctx, sub); err != nil {
		return err
	}
	_, err := f.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(f.table),
		Key:                       map[string]types.AttributeValue{"RequestID": &types.AttributeValueMemberS{Value: sub.RequestID}},
		UpdateExpression:          aws.String("SET #s = :done, #r = :result"),
		ExpressionAttributeNames:  map[string]string{"#s": "Status", "#r": "Result"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":done": &types.AttributeValueMemberS{Value: "COMPLETED"}, ":result": &types.AttributeValueMemberS{Value: `{"ok":true}`}},
	})
	return err
}

func TestSubscribeWhileFinishing(t *testing.T) {
	t.Parallel()
	db := ddblocal.NewClient(ddbtest.Endpoint(t))
	hs := newHarness(t, withStore(func(st *store.Store) routing.Store {
		return finishingStore{Store: st, db: db, table: st.Tables().Requests}
	}))
	hs.mustConnect("c1", "acme")
	hs.mustConnect("c2", "acme")
	// c1's request is stored directly: the finishing store would complete it
	// on the router's own subscription write.
	r := store.Request{RequestID: store.RequestKey("acme", "r1"), ID: "r1", TenantID: "acme", ConnectionID: "c1", UserID: "u",
		Status: store.StatusPending, Action: "delay", Payload: "{}", CreatedAt: 1, TTL: time.Now().Add(time.Hour).Unix()}
	if _, _, err := hs.store.CreateRequest(context.Background(), r, 0); err != nil {
		t.Fatal(err)
	}
	frames := hs.send("c2", `{"action":"subscribe","id":"s1","payload":{"request_id":"r1"}}`)
	if len(frames) != 2 || frames[0]["type"] != "response" || frames[1]["type"] != "complete" || frames[1]["success"] != true {
		t.Errorf("frames %v, want the response and the final frame", frames)
	}
}
