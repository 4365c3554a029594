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
