package processing

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/streamer-dev/streamer/functions/actions"
	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/functions/store"
	"github.com/streamer-dev/streamer/internal/ddblocal"
	"github.com/streamer-dev/streamer/internal/faultproxy"
)

// TestWritesOutlastSDKRetries proves a run survives a write that DynamoDB
// fails more often than the SDK retries it (four times in a row): the
// processor writes it again, so the request completes with one handler run
// and one complete frame, instead of waiting PROCESSING for its lease to
// expire and running again.
func TestWritesOutlastSDKRetries(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		faults faultproxy.Config
	}{
		// Complete's transaction fails four times.
		{"final write", faultproxy.Config{Rate: 1, Kinds: []faultproxy.Kind{faultproxy.InternalError},
			Operations: []string{"TransactWriteItems"}, MaxFaults: 4}},
		// Complete's transaction is applied but answered with a 500, and so
		// are the SDK's three retries (DynamoDB answers them as done: same
		// idempotency token).
		{"ambiguous final write", faultproxy.Config{Rate: 1, AfterForward: 1, Operations: []string{"TransactWriteItems"}, MaxFaults: 4}},
		// The claim is applied but answered with a 500, and so are the SDK's
		// three retries (which fail the condition on the applied claim).
		{"ambiguous claim", faultproxy.Config{Rate: 1, AfterForward: 1, Operations: []string{"UpdateItem"}, MaxFaults: 4}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			var runs atomic.Int32
			e.reg.MustRegister("echo", echo(&runs), actions.Options{})
			r := e.submit("r1", "echo")
			p, err := faultproxy.Start(e.ddb.Endpoint, c.faults, 1)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Close() })
			direct := e.store
			e.store = store.New(ddblocal.NewClient(p.URL), config.Tables{Connections: e.ddb.Tables.Connections, Requests: e.ddb.Tables.Requests, Subscriptions: e.ddb.Tables.Subscriptions})

			resp, err := e.handler(Config{}).HandleStream(context.Background(), events.DynamoDBEvent{Records: e.records()})
			if err != nil || len(resp.BatchItemFailures) != 0 {
				t.Errorf("HandleStream: %v, failures %v", err, resp.BatchItemFailures)
			}
			if n := p.Stats().Totals().Calls; n < 4 {
				t.Fatalf("proxy saw %d calls: the faults were not injected", n)
			}
			e.store = direct
			if got := e.get(r); got.Status != store.StatusCompleted || got.Attempt != 1 {
				t.Errorf("request %s after %d attempts, want COMPLETED after 1", got.Status, got.Attempt)
			}
			if n, done := runs.Load(), len(e.completes("c1")); n != 1 || done != 1 {
				t.Errorf("%d runs, %d complete frames; want 1 and 1", n, done)
			}
		})
	}
}

// TestWakeUpOutlastsReadErrors proves a retry-queue wake-up whose request
// cannot be read (four failed GetItem attempts) is queued again, due in a
// second, instead of being failed back to the queue — where it would wait
// out the visibility timeout, 90 minutes as deployed — and then runs.
func TestWakeUpOutlastsReadErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var runs atomic.Int32
	e.reg.MustRegister("echo", echo(&runs), actions.Options{})
	now := time.Now().UnixMilli()
	r := e.submit("r1", "echo", func(r *store.Request) { r.ProcessAfter = now - 10 })
	p, err := faultproxy.Start(e.ddb.Endpoint, faultproxy.Config{Rate: 1, Kinds: []faultproxy.Kind{faultproxy.InternalError},
		Operations: []string{"GetItem"}, MaxFaults: 4}, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	direct := e.store
	e.store = store.New(ddblocal.NewClient(p.URL), config.Tables{Connections: e.ddb.Tables.Connections, Requests: e.ddb.Tables.Requests, Subscriptions: e.ddb.Tables.Subscriptions})
	h := e.handler(Config{})

	body, _ := json.Marshal(wakeup{RequestKey: r.RequestID, DueMs: now - 10, Reason: reasonScheduled})
	resp, err := h.HandleQueue(context.Background(), events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m1", Body: string(body)}}})
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Errorf("HandleQueue: %v, failures %v; want the wake-up queued again instead", err, resp.BatchItemFailures)
	}
	if st := p.Stats()["GetItem"]; st.Faults[faultproxy.InternalError] != 4 {
		t.Fatalf("proxy stats %+v: the read did not fail", st)
	}
	e.store = direct
	e.pollUntil(h, func() bool { return e.get(r).Status == store.StatusCompleted })
	if n := runs.Load(); n != 1 {
		t.Errorf("%d runs, want 1", n)
	}
}
