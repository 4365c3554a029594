package processing

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/streamer-dev/streamer/functions/actions"
	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/functions/store"
	"github.com/streamer-dev/streamer/internal/ddblocal"
	"github.com/streamer-dev/streamer/internal/faultproxy"
)

// TestFinalWriteOutlastsSDKRetries proves a run keeps its result when the
// final write fails more often than the SDK retries it (four 500s in a row
// from DynamoDB): the processor writes it again, so the request completes
// with one handler run and one complete frame, instead of staying
// PROCESSING until its lease expires and running again.
func TestFinalWriteOutlastsSDKRetries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var runs atomic.Int32
	e.reg.MustRegister("echo", echo(&runs), actions.Options{})
	r := e.submit("r1", "echo")
	// Every attempt of the first transaction after this (Complete's) fails.
	p, err := faultproxy.Start(e.ddb.Endpoint, faultproxy.Config{Rate: 1, Kinds: []faultproxy.Kind{faultproxy.InternalError},
		Operations: []string{"TransactWriteItems"}, MaxFaults: 4}, 1)
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
	if st := p.Stats()["TransactWriteItems"]; st.Faults[faultproxy.InternalError] != 4 {
		t.Fatalf("proxy stats %+v: the SDK's four attempts did not all fail", st)
	}
	e.store = direct
	if got := e.get(r); got.Status != store.StatusCompleted || got.Attempt != 1 {
		t.Errorf("request %s after %d attempts, want COMPLETED after 1", got.Status, got.Attempt)
	}
	if n, done := runs.Load(), len(e.completes("c1")); n != 1 || done != 1 {
		t.Errorf("%d runs, %d complete frames; want 1 and 1", n, done)
	}
}
