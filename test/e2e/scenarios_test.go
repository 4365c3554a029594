package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/coder/websocket"

	"github.com/streamer-dev/streamer/client"
	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/functions/protocol"
	"github.com/streamer-dev/streamer/functions/store"
	"github.com/streamer-dev/streamer/local"
	"github.com/streamer-dev/streamer/local/localtest"
)

func TestRejectedConnects(t *testing.T) {
	t.Parallel()
	rt := localtest.Shared(t)
	tenant := localtest.Tenant("e2e-rejected")
	expired, err := rt.Token(tenant, "alice", -time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := local.Token("another-key-that-is-long-enough-for-hs256", tenant, "alice", []string{"*"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	valid := localtest.Token(t, rt, tenant, "alice")
	tests := []struct {
		name   string
		query  string
		header http.Header
		want   int
	}{
		{"no token", "", nil, http.StatusUnauthorized},
		{"garbage token", "?token=not.a.jwt", nil, http.StatusUnauthorized},
		{"token signed with another key", "?token=" + foreign, nil, http.StatusUnauthorized},
		{"expired token", "?token=" + expired, nil, http.StatusUnauthorized},
		{"bearer header", "", http.Header{"Authorization": {"Bearer " + expired}}, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		if got := dialStatus(t, rt, tt.query, tt.header); got != tt.want {
			t.Errorf("%s: got HTTP %d, want %d", tt.name, got, tt.want)
		}
	}
	if n := tenantConnections(t, rt, tenant); n != 0 {
		t.Errorf("%d connections stored after rejected connects, want 0", n)
	}
	// The same endpoint accepts a valid token, in the query or a header.
	if got := dialStatus(t, rt, "", http.Header{"Authorization": {"Bearer " + valid}}); got != http.StatusSwitchingProtocols {
		t.Errorf("valid bearer token: got HTTP %d", got)
	}
}

func TestSyncEchoAndConnectionLifecycle(t *testing.T) {
	t.Parallel()
	rt := localtest.Shared(t)
	tenant := localtest.Tenant("e2e-echo")
	c := connect(t, rt, tenant, "alice")
	eventually(t, "connection stored", func() bool { return tenantConnections(t, rt, tenant) == 1 })

	c.send(message{Action: "echo", ID: "echo-1", Payload: map[string]any{"text": "hi", "n": 2}})
	f := c.next()
	if f.Type != protocol.TypeResponse || f.RequestID != "echo-1" || !f.Success || string(f.Data) != `{"echo":{"n":2,"text":"hi"}}` {
		t.Errorf("echo answered %+v data %s", f, f.Data)
	}
	if _, err := rt.Store().GetRequest(context.Background(), tenant, "echo-1"); err == nil {
		t.Error("a sync request was stored in the requests table")
	}
	c.send(message{Action: "ping", ID: "p1"})
	if f := c.next(); f.Type != protocol.TypePong || f.RequestID != "p1" {
		t.Errorf("ping answered %+v", f)
	}
	_ = c.ws.Close(websocket.StatusNormalClosure, "")
	eventually(t, "connection deleted on $disconnect", func() bool { return tenantConnections(t, rt, tenant) == 0 })
}

func TestAsyncRequestLifecycle(t *testing.T) {
	t.Parallel()
	rt := localtest.Shared(t)
	tenant := localtest.Tenant("e2e-async")
	c := connect(t, rt, tenant, "alice")
	c.send(message{Action: "delay", ID: "job-1", Payload: map[string]any{"seconds": 0.4, "steps": 4}})
	frames := c.until("job-1", protocol.TypeComplete)
	if frames[0].Type != protocol.TypeAcknowledgment || frames[0].Status != "queued" {
		t.Errorf("first frame %+v, want the acknowledgment", frames[0])
	}
	var pct []float64
	for _, f := range frames[1 : len(frames)-1] {
		if f.Type != protocol.TypeProgress {
			t.Errorf("unexpected frame %+v between ack and complete", f)
		}
		pct = append(pct, f.Percentage)
	}
	if len(pct) == 0 || !slices.IsSorted(pct) || pct[len(pct)-1] != 100 {
		t.Errorf("progress %v, want increasing to 100", pct)
	}
	done := frames[len(frames)-1]
	if !done.Success || !strings.Contains(string(done.Result), `"steps":4`) {
		t.Errorf("complete %+v result %s", done, done.Result)
	}
	r := request(t, rt, tenant, "job-1")
	if r.Status != store.StatusCompleted || r.Progress != 100 || r.Attempt != 1 || r.Result != string(done.Result) || r.UserID != "alice" {
		t.Errorf("stored %+v", r)
	}

	// status reports the stored state.
	c.send(message{Action: "status", ID: "s1", Payload: map[string]string{"request_id": "job-1"}})
	f := c.until("s1", protocol.TypeResponse)[0]
	var st struct {
		Status   string  `json:"status"`
		Progress float64 `json:"progress"`
		Result   json.RawMessage
	}
	if err := json.Unmarshal(f.Data, &st); err != nil || st.Status != string(store.StatusCompleted) || st.Progress != 100 || string(st.Result) != r.Result {
		t.Errorf("status %s (%v)", f.Data, err)
	}
	eventually(t, "in-flight released", func() bool {
		n, err := rt.Store().CountTenantInflight(context.Background(), tenant)
		return err == nil && n == 0
	})
}

func TestDuplicateIDRunsOnce(t *testing.T) {
	t.Parallel()
	rt := localtest.Shared(t)
	tenant := localtest.Tenant("e2e-dup")
	c := connect(t, rt, tenant, "alice")
	msg := message{Action: "delay", ID: "same", Payload: map[string]any{"seconds": 0.5, "steps": 2}}
	c.send(msg)
	c.send(msg)
	acks, completes := 0, 0
	for completes == 0 {
		f := c.next()
		switch {
		case f.RequestID != "same":
		case f.Type == protocol.TypeAcknowledgment:
			acks++
		case f.Type == protocol.TypeComplete:
			completes++
		}
	}
	if acks != 2 {
		t.Errorf("%d acknowledgments, want one per message", acks)
	}
	// Once finished, the duplicate is answered with the stored result.
	c.send(msg)
	if f := c.until("same", protocol.TypeComplete); len(f) != 1 || !f[0].Success {
		t.Errorf("duplicate of a finished request answered %+v", f)
	}
	if r := request(t, rt, tenant, "same"); r.Attempt != 1 || r.Status != store.StatusCompleted {
		t.Errorf("stored attempt %d status %s, want one run", r.Attempt, r.Status)
	}
	// The same id with another action is refused.
	c.send(message{Action: "fail", ID: "same", Payload: map[string]any{"times": 0}})
	if f := c.until("same", protocol.TypeError); f[len(f)-1].Error.Code != protocol.CodeValidation {
		t.Errorf("reused id with another action: %+v", f)
	}
}

func TestSubscribeFromSecondConnection(t *testing.T) {
	t.Parallel()
	rt := localtest.Shared(t)
	tenant := localtest.Tenant("e2e-sub")
	owner, watcher := connect(t, rt, tenant, "alice"), connect(t, rt, tenant, "bob")
	owner.send(message{Action: "delay", ID: "watched", Payload: map[string]any{"seconds": 1.5, "steps": 5}})
	owner.until("watched", protocol.TypeAcknowledgment)
	watcher.send(message{Action: "subscribe", ID: "sub-1", Payload: map[string]string{"request_id": "watched"}})
	if f := watcher.until("sub-1", protocol.TypeResponse)[0]; !f.Success {
		t.Fatalf("subscribe answered %+v", f)
	}
	// The watcher's subscription is stored; the submitter follows without one.
	eventually(t, "subscription stored", func() bool {
		subs, err := rt.Store().RequestSubscriptions(context.Background(), store.RequestKey(tenant, "watched"))
		return err == nil && len(subs) == 1
	})
	got := watcher.until("watched", protocol.TypeComplete)
	if last := got[len(got)-1]; !last.Success {
		t.Errorf("subscriber's complete %+v", last)
	}
	if got := owner.until("watched", protocol.TypeComplete); !got[len(got)-1].Success {
		t.Errorf("owner's complete %+v", got)
	}
	if len(got) < 2 {
		t.Errorf("subscriber got %d frames, want progress before the complete", len(got))
	}
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	rt := localtest.Shared(t)
	ta, tb := localtest.Tenant("e2e-iso-a"), localtest.Tenant("e2e-iso-b")
	a, b := connect(t, rt, ta, "alice"), connect(t, rt, tb, "bob")
	a.send(message{Action: "delay", ID: "secret", Payload: map[string]any{"seconds": 0.2}})
	a.until("secret", protocol.TypeComplete)
	for _, action := range []string{"status", "subscribe", "cancel"} {
		b.send(message{Action: action, ID: action + "-x", Payload: map[string]string{"request_id": "secret"}})
		f := b.until(action+"-x", protocol.TypeError)
		if code := f[len(f)-1].Error.Code; code != protocol.CodeNotFound {
			t.Errorf("%s of another tenant's request: %s, want NOT_FOUND", action, code)
		}
	}
	// The same id in another tenant is another request.
	b.send(message{Action: "delay", ID: "secret", Payload: map[string]any{"seconds": 0}})
	if f := b.until("secret", protocol.TypeComplete); !f[len(f)-1].Success || f[0].Type != protocol.TypeAcknowledgment {
		t.Errorf("tenant b's own request %+v", f)
	}
	ra, rb := request(t, rt, ta, "secret"), request(t, rt, tb, "secret")
	if ra.RequestID == rb.RequestID || ra.UserID != "alice" || rb.UserID != "bob" {
		t.Errorf("stored keys %s %s users %s %s", ra.RequestID, rb.RequestID, ra.UserID, rb.UserID)
	}
}

func TestReconnectAndResume(t *testing.T) {
	t.Parallel()
	rt := localtest.Start(t, local.Options{})
	tenant := localtest.Tenant("e2e-resume")
	c := dialClient(t, rt, tenant, &client.Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	type outcome struct {
		res json.RawMessage
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := c.Request(testCtx(t), "delay", map[string]any{"seconds": 1.5, "steps": 5}, nil, client.WithID("resume"))
		done <- outcome{res, err}
	}()
	eventually(t, "request running", func() bool {
		r, err := rt.Store().GetRequest(context.Background(), tenant, "resume")
		return err == nil && r.Status == store.StatusProcessing
	})
	rt.DisconnectAll() // as API Gateway does on a redeploy
	got := <-done
	if got.err != nil {
		t.Fatal(got.err)
	}
	r := request(t, rt, tenant, "resume")
	if r.Status != store.StatusCompleted || r.Attempt != 1 || r.Result != string(got.res) {
		t.Errorf("stored %s attempt %d result %s, want completed once with %s", r.Status, r.Attempt, r.Result, got.res)
	}
	if c.Reconnects() == 0 {
		t.Error("the client did not reconnect")
	}
	eventually(t, "only the new connection stored", func() bool { return tenantConnections(t, rt, tenant) == 1 })
}

func TestRetryThenSuccess(t *testing.T) {
	t.Parallel()
	rt := localtest.Shared(t)
	tenant := localtest.Tenant("e2e-retry")
	c := connect(t, rt, tenant, "alice")
	c.send(message{Action: "fail", ID: "flaky", Payload: map[string]any{"times": 2}})
	frames := c.until("flaky", protocol.TypeComplete)
	if last := frames[len(frames)-1]; !last.Success {
		t.Errorf("complete %+v, want success after retries", last)
	}
	r := request(t, rt, tenant, "flaky")
	if r.Status != store.StatusCompleted || r.Attempt != 3 || r.RetryCount != 2 {
		t.Errorf("stored %s attempt %d retries %d, want COMPLETED on attempt 3 after 2 retries", r.Status, r.Attempt, r.RetryCount)
	}
}

func TestPermanentFailure(t *testing.T) {
	t.Parallel()
	rt := localtest.Shared(t)
	tenant := localtest.Tenant("e2e-permanent")
	c := connect(t, rt, tenant, "alice")
	c.send(message{Action: "fail", ID: "doomed", Payload: map[string]any{"permanent": true}})
	frames := c.until("doomed", protocol.TypeComplete)
	last := frames[len(frames)-1]
	if last.Success || last.Error == nil || last.Error.Code == "" {
		t.Fatalf("complete %+v, want a failure with a code", last)
	}
	r := request(t, rt, tenant, "doomed")
	if r.Status != store.StatusFailed || r.Attempt != 1 || r.Error == nil || r.Error.Code != last.Error.Code {
		t.Errorf("stored %s attempt %d error %+v, want FAILED at once with %s", r.Status, r.Attempt, r.Error, last.Error.Code)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	rt := localtest.Shared(t)
	tenant := localtest.Tenant("e2e-cancel")
	c := connect(t, rt, tenant, "alice")
	c.send(message{Action: "delay", ID: "long", Payload: map[string]any{"seconds": 60, "steps": 60}})
	c.until("long", protocol.TypeProgress) // running
	c.send(message{Action: "cancel", ID: "c1", Payload: map[string]string{"request_id": "long"}})
	if f := c.until("c1", protocol.TypeResponse); !f[0].Success {
		t.Errorf("cancel answered %+v", f)
	}
	frames := c.until("long", protocol.TypeComplete)
	if last := frames[len(frames)-1]; last.Success || last.Error.Code != protocol.CodeCancelled {
		t.Errorf("complete %+v, want CANCELLED", last)
	}
	r := request(t, rt, tenant, "long")
	if r.Status != store.StatusCancelled {
		t.Errorf("stored status %s, want CANCELLED", r.Status)
	}
	eventually(t, "in-flight released", func() bool {
		n, err := rt.Store().CountTenantInflight(context.Background(), tenant)
		return err == nil && n == 0
	})
	// Cancelling a finished request is refused.
	c.send(message{Action: "cancel", ID: "c2", Payload: map[string]string{"request_id": "long"}})
	if f := c.until("c2", protocol.TypeError); f[0].Error.Code != protocol.CodeValidation {
		t.Errorf("second cancel %+v", f)
	}
}

func TestRateLimits(t *testing.T) {
	t.Parallel()
	rt := localtest.Start(t, local.Options{Env: map[string]string{config.EnvRateLimit: "2", config.EnvTenantMaxInflight: "2"}})
	tenant := localtest.Tenant("e2e-limits")
	c := connect(t, rt, tenant, "alice")
	limited, answered := 0, 0
	for i := range 12 {
		c.send(message{Action: "echo", ID: "burst-" + string(rune('a'+i))})
	}
	for answered+limited < 12 {
		f := c.next()
		switch {
		case f.Type == protocol.TypeResponse:
			answered++
		case f.Type == protocol.TypeError && f.Error.Code == protocol.CodeRateLimited:
			if f.Error.Details["retry_after_ms"] == nil {
				t.Errorf("rate-limit error without retry_after_ms: %+v", f.Error)
			}
			limited++
		}
	}
	if limited == 0 || answered == 0 {
		t.Errorf("%d answered, %d rate limited; want both with a burst of 12 at 2/s", answered, limited)
	}

	// Tenant in-flight cap: two long requests run, the third is refused.
	d := connect(t, rt, tenant, "bob")
	codes := map[string]string{}
	for _, id := range []string{"long-1", "long-2", "long-3"} {
		d.send(message{Action: "delay", ID: id, Payload: map[string]any{"seconds": 30, "steps": 30}})
		f := d.next()
		for f.RequestID != id || (f.Type != protocol.TypeAcknowledgment && f.Type != protocol.TypeError) {
			f = d.next()
		}
		codes[id] = f.Type
		if f.Error != nil {
			codes[id] = f.Error.Code
		}
		time.Sleep(600 * time.Millisecond) // stay under the connection rate limit
	}
	if codes["long-1"] != protocol.TypeAcknowledgment || codes["long-2"] != protocol.TypeAcknowledgment || codes["long-3"] != protocol.CodeRateLimited {
		t.Errorf("answers %v, want two acknowledgments then RATE_LIMITED", codes)
	}
	if n, err := rt.Store().CountTenantInflight(context.Background(), tenant); err != nil || n != 2 {
		t.Errorf("stored in-flight %d (%v), want 2", n, err)
	}
	if _, err := rt.Store().GetRequest(context.Background(), tenant, "long-3"); err == nil {
		t.Error("the refused request was stored")
	}
}

func TestBadFrames(t *testing.T) {
	t.Parallel()
	rt := localtest.Shared(t)
	tenant := localtest.Tenant("e2e-bad")
	c := connect(t, rt, tenant, "alice")
	tests := []struct {
		name string
		give string
	}{
		{"invalid JSON", `{"action": "echo",`},
		{"not an object", `[1, 2]`},
		{"action of the wrong type", `{"action": 5}`},
		{"id of the wrong type", `{"action": "echo", "id": 7}`},
		{"metadata of the wrong type", `{"action": "echo", "metadata": "x"}`},
		{"missing action", `{"id": "x2"}`},
		{"unknown action", `{"action": "launch_rockets"}`},
	}
	for _, tt := range tests {
		c.sendRaw(websocket.MessageText, []byte(tt.give))
		f := c.next()
		if f.Type != protocol.TypeError || f.Error.Code != protocol.CodeValidation {
			t.Errorf("%s: got %+v, want a VALIDATION_ERROR frame", tt.name, f)
		}
	}
	// An async action's payload is checked by its handler: the request fails
	// at once, without retries.
	c.send(message{Action: "delay", ID: "bad-payload", Payload: map[string]any{"seconds": "soon"}})
	frames := c.until("bad-payload", protocol.TypeComplete)
	if last := frames[len(frames)-1]; last.Success || last.Error.Code != protocol.CodeValidation {
		t.Errorf("bad async payload completed %+v, want VALIDATION_ERROR", last)
	}
	if r := request(t, rt, tenant, "bad-payload"); r.Status != store.StatusFailed || r.Attempt != 1 {
		t.Errorf("bad async payload stored %s attempt %d, want FAILED on the first attempt", r.Status, r.Attempt)
	}
	// The connection survives bad frames.
	c.send(message{Action: "echo", ID: "still-here"})
	if f := c.until("still-here", protocol.TypeResponse); !f[0].Success {
		t.Errorf("echo after bad frames: %+v", f)
	}

	// Over 128 KB: API Gateway closes the connection with 1009.
	big := connect(t, rt, tenant, "bob")
	eventually(t, "two connections", func() bool { return tenantConnections(t, rt, tenant) == 2 })
	big.sendRaw(websocket.MessageText, []byte(`{"action":"echo","payload":"`+strings.Repeat("x", 130*1024)+`"}`))
	_, err := big.read()
	if got := websocket.CloseStatus(err); got != websocket.StatusMessageTooBig {
		t.Errorf("oversize message: read error %v (status %d), want close 1009", err, got)
	}
	eventually(t, "closed connection deleted", func() bool { return tenantConnections(t, rt, tenant) == 1 })

	// A binary frame: API Gateway takes none and closes the connection with 1003.
	bin := connect(t, rt, tenant, "carol")
	eventually(t, "two connections again", func() bool { return tenantConnections(t, rt, tenant) == 2 })
	bin.sendRaw(websocket.MessageBinary, []byte{0xde, 0xad})
	_, err = bin.read()
	if got := websocket.CloseStatus(err); got != websocket.StatusUnsupportedData {
		t.Errorf("binary frame: read error %v (status %d), want close 1003", err, got)
	}
	eventually(t, "binary frame's connection deleted", func() bool { return tenantConnections(t, rt, tenant) == 1 })
}

func TestRetriesExhaustedGoToTheDeadLetterQueue(t *testing.T) {
	t.Parallel()
	rt := localtest.Start(t, local.Options{})
	tenant := localtest.Tenant("e2e-dlq")
	c := connect(t, rt, tenant, "alice")
	c.send(message{Action: "fail", ID: "hopeless", Payload: map[string]any{"times": 100}})
	frames := c.until("hopeless", protocol.TypeComplete)
	if last := frames[len(frames)-1]; last.Success {
		t.Fatalf("complete %+v, want a failure", last)
	}
	r := request(t, rt, tenant, "hopeless")
	if r.Status != store.StatusFailed || r.Attempt != 5 {
		t.Errorf("stored %s after %d attempts, want FAILED after the policy's 5", r.Status, r.Attempt)
	}
	var got []string
	eventually(t, "dead letter", func() bool {
		out, err := rt.SQS().ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(rt.Queues().DeadLetter), MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			got = append(got, aws.ToString(m.Body))
		}
		return len(got) > 0
	})
	var dl struct {
		RequestID string `json:"request_id"`
		Tenant    string `json:"tenant"`
		Attempts  int    `json:"attempts"`
	}
	if len(got) != 1 || json.Unmarshal([]byte(got[0]), &dl) != nil || dl.RequestID != "hopeless" || dl.Tenant != tenant || dl.Attempts != 5 {
		t.Errorf("dead letters %v, want one for the request after 5 attempts", got)
	}
}
