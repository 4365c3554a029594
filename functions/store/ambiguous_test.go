package store

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/streamer-dev/streamer/internal/ddblocal"
	"github.com/streamer-dev/streamer/internal/ddbtest"
	"github.com/streamer-dev/streamer/internal/faultproxy"
)

// TestClaimAppliedButAnswered500 proves a claim whose first attempt was
// applied but answered with a 500 (an ambiguous write) is still won: the
// SDK's retry fails the condition on the claimant's own lease, and Claim
// must recognise it instead of leaving the request PROCESSING under a run
// that never started until the lease expires.
func TestClaimAppliedButAnswered500(t *testing.T) {
	t.Parallel()
	s, now := newStore(t)
	r := queued(t, s, "t1", "r1")
	p, err := faultproxy.Start(ddbtest.Endpoint(t), faultproxy.Config{Rate: 1, AfterForward: 1, MaxFaults: 1, Operations: []string{"UpdateItem"}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	through := *s
	through.db = dynamodb.NewFromConfig(ddblocal.AWSConfig(), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(p.URL) })

	got, claimed, err := through.Claim(context.Background(), r.RequestID, "me", now.Add(time.Minute))
	if err != nil || !claimed {
		t.Fatalf("Claim after an applied 500: claimed %v, error %v; want claimed", claimed, err)
	}
	if got.Status != StatusProcessing || got.LeaseOwner != "me" || got.Attempt != 1 {
		t.Errorf("claimed request %s owner %q attempt %d, want PROCESSING me 1", got.Status, got.LeaseOwner, got.Attempt)
	}
	if st := p.Stats()["UpdateItem"]; st.Applied != 1 {
		t.Fatalf("proxy stats %+v: the ambiguous write was not injected", st)
	}
	// Another claimant still loses.
	if _, claimed, err := s.Claim(context.Background(), r.RequestID, "other", now.Add(time.Minute)); err != nil || claimed {
		t.Errorf("second claimant: claimed %v, error %v; want lost", claimed, err)
	}
}

// TestCompleteAppliedButAnswered500 proves a final write whose every answer
// was lost (applied, then four 500s) succeeds when written again: the
// request is COMPLETED once, its in-flight slot released once, and the run
// is not told it lost its lease.
func TestCompleteAppliedButAnswered500(t *testing.T) {
	t.Parallel()
	s, now := newStore(t)
	ctx := context.Background()
	r := queued(t, s, "t1", "r1")
	if _, claimed, err := s.Claim(ctx, r.RequestID, "me", now.Add(time.Minute)); err != nil || !claimed {
		t.Fatalf("Claim: %v, claimed %v", err, claimed)
	}
	p, err := faultproxy.Start(ddbtest.Endpoint(t), faultproxy.Config{Rate: 1, AfterForward: 1, MaxFaults: 4, Operations: []string{"TransactWriteItems"}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	through := *s
	through.db = dynamodb.NewFromConfig(ddblocal.AWSConfig(), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(p.URL) })

	if err := through.Complete(ctx, r, "me", `{"ok":true}`); err == nil {
		t.Fatal("Complete answered every time with a 500 succeeded; the faults were not injected")
	}
	if err := through.Complete(ctx, r, "me", `{"ok":true}`); err != nil {
		t.Fatalf("Complete again: %v, want success", err)
	}
	if got := reload(t, s, r.RequestID); got.Status != StatusCompleted || got.Result != `{"ok":true}` {
		t.Errorf("request %s result %q, want COMPLETED", got.Status, got.Result)
	}
	if _, inflight := counters(t, s, "t1"); inflight != 0 {
		t.Errorf("in-flight %d, want 0", inflight)
	}
	if err := s.Complete(ctx, r, "other", `{}`); err != ErrLeaseLost {
		t.Errorf("another owner's Complete: %v, want ErrLeaseLost", err)
	}
}
