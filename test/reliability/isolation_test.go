package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"

	"github.com/streamer-dev/streamer/functions/protocol"
	"github.com/streamer-dev/streamer/functions/schema"
	"github.com/streamer-dev/streamer/functions/store"
	"github.com/streamer-dev/streamer/local"
	"github.com/streamer-dev/streamer/local/localtest"
)

// TestTenantIsolation proves a tenant cannot reach another tenant's requests.
// Tenant A has a finished and a running request; tenant B names them with
// every built-in action that takes a request id (status, subscribe,
// unsubscribe, cancel), by A's id, by A's key ("A#id") and by an id nobody
// used. B always gets NOT_FOUND and nothing else — no status, result or
// progress — and A's requests are unchanged: not cancelled, no subscription of
// B's, and A still gets its frames while B gets none of them. B submitting
// async requests with A's ids creates B's own requests.
func TestTenantIsolation(t *testing.T) {
	rt := localtest.Start(t, local.Options{Env: unlimited})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a, b := localtest.Tenant("iso-a"), localtest.Tenant("iso-b")
	ca := dialWire(t, rt, localtest.Token(t, rt, a, "alice"))
	cb := dialWire(t, rt, localtest.Token(t, rt, b, "bob"))
	o := outcome{Group: groupInput, Scenario: "tenant isolation"}

	// A's finished request, then its running one.
	submitDelay(t, ca, "done-1", 0)
	finished := readUntil(t, ca, func(f wireFrame) bool { return f.Type == protocol.TypeComplete && f.RequestID == "done-1" })
	seconds := sized(6, 20)
	submitDelay(t, ca, "run-1", seconds)
	doneBefore := storedRequest(t, ctx, rt, a, "done-1")

	ids := map[string]string{}
	for _, id := range []string{"done-1", "run-1"} {
		ids["A's id "+id] = id
		ids["A's key "+id] = store.RequestKey(a, id)
	}
	ids["an unused id"] = "never-used"
	ids["an unused key"] = store.RequestKey(a, "never-used")
	mine := map[string]bool{} // ids of B's messages: every frame B gets must carry one
	n := 0
	for _, action := range []string{"status", "subscribe", "unsubscribe", "cancel"} {
		for form, id := range ids {
			n++
			msgID := fmt.Sprintf("b-%d", n)
			mine[msgID] = true
			f, err := cb.request(protocol.Message{Action: action, ID: msgID, Payload: targetOf(id)})
			if err != nil {
				t.Fatalf("%s by B of %s: %v", action, form, err)
			}
			if why := notFoundOnly(f, msgID, id); why != "" {
				o.Errors++
				t.Errorf("%s by B of %s: %s", action, form, why)
			}
		}
	}
	o.Size = fmt.Sprintf("%d cross-tenant messages (4 actions × %d ids) + 2 same-id submits", n, len(ids))

	// A's requests are unchanged: the finished one item for item, the running
	// one not cancelled and followed by A's connection only.
	if after := storedRequest(t, ctx, rt, a, "done-1"); !reflect.DeepEqual(after, doneBefore) {
		o.Errors++
		t.Errorf("A's finished request changed:\n%+v\nto\n%+v", doneBefore, after)
	}
	if r := storedRequest(t, ctx, rt, a, "run-1"); r.Status.Final() {
		o.Errors++
		t.Errorf("A's running request is %s after B's messages (delay of %d s)", r.Status, seconds)
	}
	items, err := queryAll(ctx, rt.DynamoDB(), rt.Tables().Subscriptions, schema.IndexRequestSubs, schema.AttrRequestID, store.RequestKey(a, "run-1"))
	if err != nil {
		t.Fatal(err)
	}
	var subs []store.Subscription
	if err := attributevalue.UnmarshalListOfMaps(items, &subs); err != nil {
		t.Fatal(err)
	}
	bFootprint, err := footprintOf(ctx, rt, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range subs {
		if slices.Contains(bFootprint.Connections, s.ConnectionID) || s.TenantID != a {
			o.Errors++
			t.Errorf("A's running request has a subscription of B's: %+v", s)
		}
	}
	if bFootprint.Subscriptions > 0 {
		o.Errors++
		t.Errorf("B's connection has %d subscriptions after the cross-tenant messages", bFootprint.Subscriptions)
	}

	// B's submits with A's ids (of the finished and of the running request)
	// are B's own requests.
	for _, id := range []string{"done-1", "run-1"} {
		mine[id] = true
		submitDelay(t, cb, id, 0)
		readUntil(t, cb, func(f wireFrame) bool {
			if !mine[f.RequestID] {
				o.Errors++
				t.Errorf("B got a frame of someone else's request: %s", f.Raw)
			}
			return f.Type == protocol.TypeComplete && f.RequestID == id
		})
		if r := storedRequest(t, ctx, rt, b, id); r.TenantID != b || r.RequestID != store.RequestKey(b, id) || !r.Status.Final() {
			o.Errors++
			t.Errorf("B's request with A's id %s is stored as %+v", id, r)
		}
	}
	if after := storedRequest(t, ctx, rt, a, "done-1"); !reflect.DeepEqual(after, doneBefore) {
		o.Errors++
		t.Errorf("B's submit with A's id changed A's request to %+v", after)
	}

	// A gets its running request's frames to the end; B gets none of them.
	frames := readUntil(t, ca, func(f wireFrame) bool { return f.Type == protocol.TypeComplete && f.RequestID == "run-1" })
	progress := 0
	for _, f := range frames {
		if f.Type == protocol.TypeProgress {
			progress++
		}
	}
	if last := frames[len(frames)-1]; !completedOK(last) {
		o.Errors++
		t.Errorf("A's running request ended with %s", last.Raw)
	}
	if extra, err := cb.ping("b-last"); err != nil || len(extra) > 0 {
		o.Errors++
		t.Errorf("B's frames after A's request finished: %v, %v", extra, err)
	}
	reqs := settle(t, rt.DynamoDB(), rt.Tables().Requests, []string{a, b}, time.Minute)
	tally(&o, []string{store.RequestKey(a, "done-1"), store.RequestKey(a, "run-1"), store.RequestKey(b, "done-1"), store.RequestKey(b, "run-1")}, reqs)
	o.Notes = fmt.Sprintf("every cross-tenant message answered NOT_FOUND with no data; A's running request got %d progress frames on A's connection and none on B's; "+
		"B's submits with A's ids created B's own requests; A's finished request unchanged (%d frames before)", progress, len(finished))
	record(t, o)
}

// submitDelay sends an async delay of seconds (one progress step a second)
// with id on w and checks it is acknowledged.
func submitDelay(t *testing.T, w *wire, id string, seconds int) {
	t.Helper()
	payload, _ := json.Marshal(map[string]int{"seconds": seconds, "steps": max(seconds, 1)})
	f, err := w.request(protocol.Message{Action: "delay", ID: id, Payload: payload})
	if err != nil || f.Type != protocol.TypeAcknowledgment || f.RequestID != id {
		t.Fatalf("submit %s: %s, %v; want an acknowledgment", id, f.Raw, err)
	}
}

// readUntil reads w's frames until last accepts one, and returns them all.
func readUntil(t *testing.T, w *wire, last func(wireFrame) bool) []wireFrame {
	t.Helper()
	var out []wireFrame
	for {
		f, err := w.next()
		if err != nil {
			t.Fatalf("read: %v (after %d frames)", err, len(out))
		}
		out = append(out, f)
		if last(f) {
			return out
		}
	}
}

// notFoundOnly returns why f is not exactly the NOT_FOUND answer to message
// msgID naming requestID ("" when it is).
func notFoundOnly(f wireFrame, msgID, requestID string) string {
	switch {
	case f.Type != protocol.TypeError || f.Error == nil || f.Error.Code != protocol.CodeNotFound:
		return "answer " + f.Raw + ", want NOT_FOUND"
	case f.RequestID != msgID:
		return fmt.Sprintf("request_id %q, want %q", f.RequestID, msgID)
	case f.Error.Message != fmt.Sprintf("no request %q", requestID) || len(f.Error.Details) > 0:
		return "error " + f.Raw + " says more than that the id is unknown"
	case len(f.Fields) != 3:
		return "frame " + f.Raw + " carries more than type, request_id and error"
	}
	return ""
}

// completedOK reports whether f is a successful complete frame.
func completedOK(f wireFrame) bool {
	var c protocol.Complete
	return f.Type == protocol.TypeComplete && json.Unmarshal([]byte(f.Raw), &c) == nil && c.Success
}

// storedRequest reads tenant's request id from the table.
func storedRequest(t *testing.T, ctx context.Context, rt *local.Runtime, tenant, id string) store.Request {
	t.Helper()
	r, err := rt.Store().GetRequest(ctx, tenant, id)
	if err != nil {
		t.Fatalf("read request %s of %s: %v", id, tenant, err)
	}
	return r
}
