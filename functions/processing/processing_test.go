package processing

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/streamer-dev/streamer/functions/actions"
	"github.com/streamer-dev/streamer/functions/protocol"
	"github.com/streamer-dev/streamer/functions/store"
	"github.com/streamer-dev/streamer/functions/tracing"
)

// echo reports 50% and returns its payload; runs counts its calls.
func echo(runs *atomic.Int32) actions.Handler {
	return func(ctx context.Context, req actions.Request, rep actions.Reporter) (any, error) {
		runs.Add(1)
		rep.Report(50, "halfway", nil)
		return json.RawMessage(req.Payload), nil
	}
}

func TestStreamImageConversion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	want := e.submit("r1", "echo", func(r *store.Request) {
		r.Metadata = map[string]string{"trace": "x"}
		r.Priority = 7
	})
	recs := inserts(e.records())
	if len(recs) != 1 {
		t.Fatalf("%d INSERT records, want 1", len(recs))
	}
	got, err := requestFromImage(recs[0].Change.NewImage)
	if err != nil {
		t.Fatalf("requestFromImage: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("from the stream image\n got  %+v\n want %+v", got, want)
	}
}

func TestCompletesFromStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var runs atomic.Int32
	e.reg.MustRegister("echo", echo(&runs), actions.Options{})
	r := e.submit("r1", "echo")
	resp, err := e.handler(Config{}).HandleStream(context.Background(), events.DynamoDBEvent{Records: e.records()})
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("HandleStream: %v, failures %v", err, resp.BatchItemFailures)
	}
	got := e.get(r)
	if got.Status != store.StatusCompleted || got.Result != `{"n":1}` || got.ProcessedAt == 0 || got.Attempt != 1 {
		t.Errorf("request %s result %q processed_at %d attempt %d", got.Status, got.Result, got.ProcessedAt, got.Attempt)
	}
	if n := e.inflight(); n != 0 {
		t.Errorf("inflight %d, want 0", n)
	}
	progress := e.poster.ofType("c1", protocol.TypeProgress)
	if len(progress) != 1 || progress[0]["percentage"] != 50.0 || progress[0]["request_id"] != "r1" {
		t.Errorf("progress frames %v", progress)
	}
	done := e.completes("c1")
	if len(done) != 1 || done[0]["success"] != true || !reflect.DeepEqual(done[0]["result"], map[string]any{"n": 1.0}) {
		t.Errorf("complete frames %v", done)
	}
	// Later stream records (the processor's own MODIFY writes) start nothing.
	resp, err = e.handler(Config{}).HandleStream(context.Background(), events.DynamoDBEvent{Records: e.records()})
	if err != nil || len(resp.BatchItemFailures) != 0 || runs.Load() != 1 {
		t.Errorf("MODIFY records: err %v failures %v runs %d, want one run in all", err, resp.BatchItemFailures, runs.Load())
	}
}

func TestDuplicateDeliveriesRunOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var runs atomic.Int32
	e.reg.MustRegister("echo", echo(&runs), actions.Options{})
	e.submit("r1", "echo")
	recs := inserts(e.records())
	// The same record three times in one batch, then again in a later batch.
	batch := events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{recs[0], recs[0], recs[0]}}
	h := e.handler(Config{})
	for i := range 2 {
		if resp, err := h.HandleStream(context.Background(), batch); err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("delivery %d: %v %v", i, err, resp.BatchItemFailures)
		}
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
	if n := len(e.completes("c1")); n != 1 {
		t.Errorf("%d complete frames, want 1", n)
	}
}

func TestClaimRaceTwoProcessors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var runs atomic.Int32
	e.reg.MustRegister("echo", echo(&runs), actions.Options{})
	e.submit("r1", "echo")
	ev := events.DynamoDBEvent{Records: inserts(e.records())}
	var wg sync.WaitGroup
	for range 2 {
		h := e.handler(Config{}) // two Lambda instances
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.HandleStream(context.Background(), ev); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := runs.Load(); n != 1 {
		t.Errorf("handler ran %d times across two processors, want 1", n)
	}
}

func TestRetryThenSuccessResumesFromCheckpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var attempts []actions.Request
	var mu sync.Mutex
	e.reg.MustRegister("flaky", func(ctx context.Context, req actions.Request, rep actions.Reporter) (any, error) {
		mu.Lock()
		attempts = append(attempts, req)
		mu.Unlock()
		if req.Attempt == 1 {
			if err := rep.Checkpoint(map[string]int{"done": 3}); err != nil {
				return nil, err
			}
			return nil, errors.New("upstream unavailable")
		}
		return "ok", nil
	}, actions.Options{Retry: actions.RetryPolicy{BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}})
	r := e.submit("r1", "flaky")
	h := e.handler(Config{})
	if _, err := h.HandleStream(context.Background(), events.DynamoDBEvent{Records: e.records()}); err != nil {
		t.Fatal(err)
	}
	got := e.get(r)
	if got.Status != store.StatusRetrying || got.RetryCount != 1 || got.Error == nil || got.Error.Code != protocol.CodeInternal || got.Checkpoint != `{"done":3}` {
		t.Fatalf("after the failure: %s retries %d error %+v checkpoint %q", got.Status, got.RetryCount, got.Error, got.Checkpoint)
	}
	e.pollUntil(h, func() bool { return e.get(r).Status == store.StatusCompleted })
	if len(attempts) != 2 || attempts[1].Attempt != 2 || string(attempts[1].Checkpoint) != `{"done":3}` {
		t.Errorf("attempts %+v, want a second one resuming from the checkpoint", attempts)
	}
	if got := e.get(r); got.Result != `"ok"` || e.inflight() != 0 {
		t.Errorf("result %q inflight %d", got.Result, e.inflight())
	}
	if n := e.queueCount(e.dlq); n != 0 {
		t.Errorf("%d dead letters, want 0", n)
	}
}

func TestFailuresDeadLetterOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		err          error
		maxAttempts  int
		wantCode     string
		wantAttempts float64
	}{
		{name: "permanent error fails at once", err: actions.Permanent(errors.New("bad input file")), maxAttempts: 5, wantCode: protocol.CodeInternal, wantAttempts: 1},
		{name: "user error keeps its code", err: actions.Invalid("field x is required"), maxAttempts: 5, wantCode: protocol.CodeValidation, wantAttempts: 1},
		{name: "retries exhausted", err: errors.New("still down"), maxAttempts: 2, wantCode: protocol.CodeInternal, wantAttempts: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.reg.MustRegister("bad", func(context.Context, actions.Request, actions.Reporter) (any, error) { return nil, tt.err },
				actions.Options{Retry: actions.RetryPolicy{MaxAttempts: tt.maxAttempts, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}})
			r := e.submit("r1", "bad")
			h := e.handler(Config{})
			if _, err := h.HandleStream(context.Background(), events.DynamoDBEvent{Records: e.records()}); err != nil {
				t.Fatal(err)
			}
			e.pollUntil(h, func() bool { return e.get(r).Status == store.StatusFailed })
			got := e.get(r)
			if got.Error == nil || got.Error.Code != tt.wantCode || e.inflight() != 0 {
				t.Errorf("failed request error %+v inflight %d", got.Error, e.inflight())
			}
			done := e.completes("c1")
			if len(done) != 1 || done[0]["success"] != false || done[0]["error"].(map[string]any)["code"] != tt.wantCode {
				t.Errorf("complete frames %v", done)
			}
			dl := e.drain(e.dlq, 0)
			if len(dl) != 1 {
				t.Fatalf("%d dead letters, want 1: %v", len(dl), dl)
			}
			if dl[0]["request_id"] != "r1" || dl[0]["action"] != "bad" || dl[0]["tenant"] != "t1" || dl[0]["attempts"] != tt.wantAttempts || dl[0]["last_error"] != tt.err.Error() {
				t.Errorf("dead letter %v", dl[0])
			}
		})
	}
}

func TestCancelWhileRunning(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	started := make(chan struct{})
	var sawCancel atomic.Bool
	e.reg.MustRegister("slow", func(ctx context.Context, req actions.Request, rep actions.Reporter) (any, error) {
		close(started)
		<-ctx.Done()
		sawCancel.Store(true)
		return nil, ctx.Err()
	}, actions.Options{})
	r := e.submit("r1", "slow")
	h := e.handler(Config{})
	done := make(chan error)
	go func() {
		_, err := h.HandleStream(context.Background(), events.DynamoDBEvent{Records: e.records()})
		done <- err
	}()
	<-started
	if _, err := e.store.CancelRequest(context.Background(), "t1", "r1"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !sawCancel.Load() {
		t.Error("handler context was not cancelled")
	}
	if got := e.get(r); got.Status != store.StatusCancelled || e.inflight() != 0 {
		t.Errorf("status %s inflight %d, want CANCELLED 0", got.Status, e.inflight())
	}
	if n := len(e.completes("c1")); n != 0 {
		t.Errorf("processor sent %d complete frames for a cancelled request, want 0 (the router sends it)", n)
	}
	if n := e.queueCount(e.dlq); n != 0 {
		t.Errorf("%d dead letters for a cancel", n)
	}
}

func TestGoneConnectionDuringProgress(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "c1")
	var runs atomic.Int32
	e.reg.MustRegister("echo", echo(&runs), actions.Options{})
	r := e.submit("r1", "echo")
	e.subscribe("c2", r)
	if _, err := e.handler(Config{}).HandleStream(context.Background(), events.DynamoDBEvent{Records: e.records()}); err != nil {
		t.Fatal(err)
	}
	if got := e.get(r); got.Status != store.StatusCompleted {
		t.Errorf("status %s, want COMPLETED despite a gone subscriber", got.Status)
	}
	if _, err := e.store.GetConnection(context.Background(), "c1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("gone connection c1: %v, want removed", err)
	}
	subs, err := e.store.RequestSubscriptions(context.Background(), r.RequestID)
	if err != nil || len(subs) != 1 || subs[0].ConnectionID != "c2" {
		t.Errorf("subscriptions %+v (%v), want only c2", subs, err)
	}
	if len(e.poster.ofType("c2", protocol.TypeProgress)) != 1 || len(e.completes("c2")) != 1 {
		t.Errorf("c2 frames %v", e.poster.frames["c2"])
	}
}

func TestLeaseExpiryReclaimResumes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var got actions.Request
	e.reg.MustRegister("resumable", func(ctx context.Context, req actions.Request, rep actions.Reporter) (any, error) {
		got = req
		return "resumed", nil
	}, actions.Options{})
	r := e.submit("r1", "resumable")
	ctx := context.Background()
	// A run that claimed, checkpointed and crashed: its lease has expired.
	if _, ok, err := e.store.Claim(ctx, r.RequestID, "crashed", time.Now().Add(-time.Millisecond)); err != nil || !ok {
		t.Fatalf("Claim: %v %v", ok, err)
	}
	if err := e.store.SaveProgress(ctx, r.RequestID, "crashed", store.Progress{Percent: 30, Message: "page 3", Checkpoint: `{"page":3}`}); err != nil {
		t.Fatal(err)
	}
	// Its watchdog wake-up arrives.
	body, _ := json.Marshal(wakeup{RequestKey: r.RequestID, DueMs: time.Now().UnixMilli(), Reason: reasonLease})
	resp, err := e.handler(Config{}).HandleQueue(ctx, events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m1", Body: string(body)}}})
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("HandleQueue: %v %v", err, resp.BatchItemFailures)
	}
	if got.Attempt != 2 || string(got.Checkpoint) != `{"page":3}` {
		t.Errorf("reclaimed run got attempt %d checkpoint %s, want 2 {\"page\":3}", got.Attempt, got.Checkpoint)
	}
	if st := e.get(r); st.Status != store.StatusCompleted || st.Result != `"resumed"` {
		t.Errorf("status %s result %q", st.Status, st.Result)
	}
}

func TestPartialBatchFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var runs atomic.Int32
	e.reg.MustRegister("echo", echo(&runs), actions.Options{})
	e.submit("r1", "echo")
	e.submit("r2", "echo")
	recs := inserts(e.records())
	// Corrupt the second record's image: its attempt is not a number.
	bad := recs[1]
	img := map[string]events.DynamoDBAttributeValue{}
	for k, v := range bad.Change.NewImage {
		img[k] = v
	}
	img["Attempt"] = events.NewStringAttribute("one")
	bad.Change.NewImage = img
	resp, err := e.handler(Config{}).HandleStream(context.Background(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{recs[0], bad}})
	if err != nil {
		t.Fatal(err)
	}
	want := []events.DynamoDBBatchItemFailure{{ItemIdentifier: bad.Change.SequenceNumber}}
	if !reflect.DeepEqual(resp.BatchItemFailures, want) {
		t.Errorf("failures %v, want %v", resp.BatchItemFailures, want)
	}
	if runs.Load() != 1 {
		t.Errorf("runs %d, want the good record run once", runs.Load())
	}
}

func TestStopsTakingWorkNearDeadline(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var runs atomic.Int32
	e.reg.MustRegister("echo", echo(&runs), actions.Options{})
	r := e.submit("r1", "echo")
	recs := inserts(e.records())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // below MinRemaining (10s)
	defer cancel()
	resp, err := e.handler(Config{}).HandleStream(ctx, events.DynamoDBEvent{Records: recs})
	if err != nil || len(resp.BatchItemFailures) != 1 || runs.Load() != 0 {
		t.Errorf("err %v failures %v runs %d; want the record handed back unrun", err, resp.BatchItemFailures, runs.Load())
	}
	if got := e.get(r); got.Status != store.StatusPending {
		t.Errorf("status %s, want PENDING", got.Status)
	}
}

func TestTimeoutIsRetryable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.reg.MustRegister("stuck", func(ctx context.Context, req actions.Request, rep actions.Reporter) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}, actions.Options{Timeout: 50 * time.Millisecond})
	r := e.submit("r1", "stuck")
	if _, err := e.handler(Config{}).HandleStream(context.Background(), events.DynamoDBEvent{Records: e.records()}); err != nil {
		t.Fatal(err)
	}
	if got := e.get(r); got.Status != store.StatusRetrying || got.Error == nil || got.Error.Code != protocol.CodeTimeout {
		t.Errorf("status %s error %+v, want RETRYING with TIMEOUT", got.Status, got.Error)
	}
}

func TestScheduledRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var runs atomic.Int32
	e.reg.MustRegister("echo", echo(&runs), actions.Options{})
	due := time.Now().Add(3 * time.Second)
	r := e.submit("r1", "echo", func(r *store.Request) { r.ProcessAfter = due.UnixMilli() })
	h := e.handler(Config{})
	if _, err := h.HandleStream(context.Background(), events.DynamoDBEvent{Records: e.records()}); err != nil {
		t.Fatal(err)
	}
	// On a loaded machine the insert may be handled after the due time; the
	// request must then run, so the check only holds before it.
	if got := e.get(r); time.Now().Before(due) && (got.Status != store.StatusPending || runs.Load() != 0) {
		t.Fatalf("status %s runs %d before its due time, want PENDING 0", got.Status, runs.Load())
	}
	e.pollUntil(h, func() bool { return e.get(r).Status == store.StatusCompleted })
	if got := e.get(r); got.ProcessedAt < due.UnixMilli() {
		t.Errorf("processed at %d, before its due time %d", got.ProcessedAt, due.UnixMilli())
	}
}

func TestIgnoredRecords(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var runs atomic.Int32
	e.reg.MustRegister("echo", echo(&runs), actions.Options{})
	r := e.submit("r1", "echo")
	e.records() // skip the INSERT
	if _, err := e.ddb.Client.DeleteItem(context.Background(), deleteInput(e, r.RequestID)); err != nil {
		t.Fatal(err)
	}
	recs := e.records()
	if len(recs) != 1 || recs[0].EventName != "REMOVE" {
		t.Fatalf("records %v, want one REMOVE", recs)
	}
	ttl := recs[0]
	ttl.UserIdentity = &events.DynamoDBUserIdentity{Type: "Service", PrincipalID: "dynamodb.amazonaws.com"}
	resp, err := e.handler(Config{}).HandleStream(context.Background(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{ttl, recs[0]}})
	if err != nil || len(resp.BatchItemFailures) != 0 || runs.Load() != 0 || e.queueCount(e.retry) != 0 {
		t.Errorf("REMOVE records: err %v failures %v runs %d queued %d; want nothing done", err, resp.BatchItemFailures, runs.Load(), e.queueCount(e.retry))
	}
}

// recordRuns registers action as a handler that records the ids it runs, in
// order; the returned function reads them.
func (e *env) recordRuns(action string) func() []string {
	var mu sync.Mutex
	var order []string
	e.reg.MustRegister(action, func(ctx context.Context, req actions.Request, rep actions.Reporter) (any, error) {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, req.ID)
		return nil, nil
	}, actions.Options{})
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(order)
	}
}

func TestQueueRunsByPriority(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	order := e.recordRuns("rec")
	now := time.Now().UnixMilli()
	var msgs []events.SQSMessage
	for _, p := range []struct {
		id       string
		priority int
		after    int64
	}{{"low", 1, now - 10}, {"high-late", 9, now - 5}, {"high-early", 9, now - 20}, {"mid", 5, now - 30}} {
		r := e.submit(p.id, "rec", func(r *store.Request) { r.Priority, r.ProcessAfter = p.priority, p.after })
		body, _ := json.Marshal(wakeup{RequestKey: r.RequestID, DueMs: p.after, Reason: reasonScheduled})
		msgs = append(msgs, events.SQSMessage{MessageId: p.id, Body: string(body)})
	}
	if _, err := e.handler(Config{Concurrency: 1}).HandleQueue(context.Background(), events.SQSEvent{Records: msgs}); err != nil {
		t.Fatal(err)
	}
	want := []string{"high-early", "high-late", "mid", "low"}
	if got := order(); !reflect.DeepEqual(got, want) {
		t.Errorf("run order %v, want %v", got, want)
	}
}

// TestQueueSweepsPriorityIndex: a wake-up triggers a sweep of the
// priority-queue index, so a due high-priority scheduled request runs before
// the low-priority one whose wake-up arrived, even though its own wake-up has
// not; the sweep takes no more than the batch brought.
func TestQueueSweepsPriorityIndex(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	order := e.recordRuns("rec")
	now := time.Now().UnixMilli()
	reqs := map[string]store.Request{}
	for _, p := range []struct {
		id       string
		priority int
		after    int64
	}{{"low", 0, now - 3000}, {"urgent", 9, now - 1000}, {"mid", 5, now - 2000}} {
		reqs[p.id] = e.submit(p.id, "rec", func(r *store.Request) { r.Priority, r.CreatedAt, r.ProcessAfter = p.priority, now-60_000, p.after })
	}
	body, _ := json.Marshal(wakeupFor(reqs["low"], now-3000, reasonScheduled))
	msgs := []events.SQSMessage{{MessageId: "low", Body: string(body)}}
	if _, err := e.handler(Config{Concurrency: 1}).HandleQueue(context.Background(), events.SQSEvent{Records: msgs}); err != nil {
		t.Fatal(err)
	}
	if got, want := order(), []string{"urgent", "low"}; !reflect.DeepEqual(got, want) {
		t.Errorf("run order %v, want %v", got, want)
	}
	if got := e.get(reqs["mid"]); got.Status != store.StatusPending {
		t.Errorf("mid is %s, want PENDING until its own wake-up (the batch brought one)", got.Status)
	}
}

func TestLargeResults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		size        int
		wantStatus  store.Status
		wantSuccess bool
	}{
		{name: "too large for a frame: stored, announced without the result", size: 64 << 10, wantStatus: store.StatusCompleted, wantSuccess: true},
		{name: "too large for the item: failed", size: store.MaxResultBytes + 1, wantStatus: store.StatusFailed, wantSuccess: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.reg.MustRegister("big", func(context.Context, actions.Request, actions.Reporter) (any, error) {
				return strings.Repeat("x", tt.size), nil
			}, actions.Options{})
			r := e.submit("r1", "big")
			if _, err := e.handler(Config{}).HandleStream(context.Background(), events.DynamoDBEvent{Records: e.records()}); err != nil {
				t.Fatal(err)
			}
			got := e.get(r)
			if got.Status != tt.wantStatus || e.inflight() != 0 {
				t.Errorf("status %s inflight %d, want %s 0", got.Status, e.inflight(), tt.wantStatus)
			}
			done := e.completes("c1")
			if len(done) != 1 {
				t.Fatalf("complete frames %d, want 1", len(done))
			}
			errBody, _ := done[0]["error"].(map[string]any)
			if done[0]["success"] != tt.wantSuccess || done[0]["result"] != nil || errBody["code"] != CodeResultTooLarge {
				t.Errorf("complete frame %v", done[0])
			}
		})
	}
}

// TestHandlerRunTraced: under a sampled Lambda trace, each handler run is an
// X-Ray subsegment, annotated with the request, tenant, action and attempt.
func TestHandlerRunTraced(t *testing.T) {
	t.Parallel()
	daemon, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = daemon.Close() })
	e := newEnv(t)
	var runs atomic.Int32
	e.reg.MustRegister("echo", echo(&runs), actions.Options{})
	e.submit("r1", "echo")
	h := e.handler(Config{Tracer: tracing.New(daemon.LocalAddr().String(), slog.New(slog.DiscardHandler))})
	ctx := tracing.ContextWithHeader(context.Background(), "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
	if _, err := h.HandleStream(ctx, events.DynamoDBEvent{Records: e.records()}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	_ = daemon.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := daemon.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no subsegment: %v", err)
	}
	_, body, _ := strings.Cut(string(buf[:n]), "\n")
	var doc struct {
		Name        string         `json:"name"`
		TraceID     string         `json:"trace_id"`
		Annotations map[string]any `json:"annotations"`
		Fault       bool           `json:"fault"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"request_id": "r1", "tenant": "t1", "action": "echo", "attempt": 1.0}
	if doc.Name != "handler echo" || doc.TraceID != "1-5759e988-bd862e3fe1be46a994272793" || doc.Fault || !reflect.DeepEqual(doc.Annotations, want) {
		t.Errorf("subsegment %+v, want handler echo with annotations %v", doc, want)
	}
}
