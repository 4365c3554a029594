package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/internal/ddbtest"
)

// epoch is the tests' start of time. It follows the real clock: DynamoDB Local
// deletes items whose TTL has passed in real time, whatever the store's clock says.
var epoch = time.Now().UTC().Truncate(time.Second)

// newStore returns a store on fresh tables with a clock the test controls.
func newStore(t testing.TB) (*Store, *time.Time) {
	t.Helper()
	env := ddbtest.Tables(t)
	s := New(env.Client, config.Tables{Connections: env.Tables.Connections, Requests: env.Tables.Requests, Subscriptions: env.Tables.Subscriptions})
	now := epoch
	s.now = func() time.Time { return now }
	return s, &now
}

func conn(id, tenant string) Connection {
	return Connection{ConnectionID: id, UserID: "u-" + id, TenantID: tenant, Permissions: []string{"*"}, Endpoint: "http://x",
		ConnectedAt: epoch.UnixMilli(), LastPing: epoch.UnixMilli(), TTL: epoch.Add(3 * time.Hour).Unix()}
}

func pending(tenant, id string) Request {
	return Request{RequestID: RequestKey(tenant, id), ID: id, TenantID: tenant, ConnectionID: "c1", UserID: "u", Status: StatusPending,
		Action: "delay", Payload: `{}`, CreatedAt: epoch.UnixMilli(), ProcessAfter: epoch.UnixMilli(), TTL: epoch.Add(24 * time.Hour).Unix()}
}

func counters(t *testing.T, s *Store, tenant string) (int, int) {
	t.Helper()
	c, i, err := s.TenantCounters(context.Background(), tenant)
	if err != nil {
		t.Fatalf("TenantCounters: %v", err)
	}
	return c, i
}

func TestConnectionLifecycle(t *testing.T) {
	t.Parallel()
	s, now := newStore(t)
	ctx := context.Background()
	if err := s.PutConnection(ctx, conn("c1", "t1"), 0); err != nil {
		t.Fatalf("PutConnection: %v", err)
	}
	if err := s.PutConnection(ctx, conn("c1", "t1"), 0); err != nil {
		t.Fatalf("PutConnection again: %v", err)
	}
	if c, _ := counters(t, s, "t1"); c != 1 {
		t.Errorf("connections counter = %d after a repeated put, want 1", c)
	}
	got, err := s.GetConnection(ctx, "c1")
	if err != nil || got.TenantID != "t1" || got.UserID != "u-c1" || len(got.Permissions) != 1 {
		t.Fatalf("GetConnection = %+v, %v", got, err)
	}
	*now = now.Add(time.Minute)
	if err := s.TouchConnection(ctx, "c1", 2*time.Hour); err != nil {
		t.Fatalf("TouchConnection: %v", err)
	}
	got, _ = s.GetConnection(ctx, "c1")
	if got.LastPing != now.UnixMilli() || got.TTL != now.Add(2*time.Hour).Unix() {
		t.Errorf("after touch LastPing=%d TTL=%d, want %d and %d", got.LastPing, got.TTL, now.UnixMilli(), now.Add(2*time.Hour).Unix())
	}
	if err := s.PutSubscription(ctx, Subscription{ConnectionID: "c1", RequestID: RequestKey("t1", "r1"), TenantID: "t1", TTL: got.TTL}); err != nil {
		t.Fatalf("PutSubscription: %v", err)
	}
	if removed, err := s.RemoveConnection(ctx, "c1"); err != nil || removed.TenantID != "t1" {
		t.Fatalf("RemoveConnection = %+v, %v; want c1 of t1", removed, err)
	}
	if removed, err := s.RemoveConnection(ctx, "c1"); err != nil || removed.ConnectionID != "" {
		t.Fatalf("RemoveConnection again = %+v, %v; want nothing removed", removed, err)
	}
	if _, err := s.GetConnection(ctx, "c1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetConnection after remove = %v, want ErrNotFound", err)
	}
	if err := s.TouchConnection(ctx, "c1", time.Hour); !errors.Is(err, ErrNotFound) {
		t.Errorf("TouchConnection after remove = %v, want ErrNotFound", err)
	}
	if subs, err := s.RequestSubscriptions(ctx, RequestKey("t1", "r1")); err != nil || len(subs) != 0 {
		t.Errorf("subscriptions after remove = %v, %v; want none", subs, err)
	}
	if c, _ := counters(t, s, "t1"); c != 0 {
		t.Errorf("connections counter = %d after remove, want 0", c)
	}
}

func TestGetConnectionExpired(t *testing.T) {
	t.Parallel()
	s, now := newStore(t)
	if err := s.PutConnection(context.Background(), conn("c1", "t1"), 0); err != nil {
		t.Fatal(err)
	}
	*now = now.Add(4 * time.Hour)
	if _, err := s.GetConnection(context.Background(), "c1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetConnection of an expired item = %v, want ErrNotFound", err)
	}
}

func TestTenantConnectionLimit(t *testing.T) {
	t.Parallel()
	s, now := newStore(t)
	ctx := context.Background()
	for i := range 2 {
		if err := s.PutConnection(ctx, conn(fmt.Sprint("c", i), "t1"), 2); err != nil {
			t.Fatalf("PutConnection %d: %v", i, err)
		}
	}
	if err := s.PutConnection(ctx, conn("c2", "t1"), 2); !errors.Is(err, ErrTenantConnectionLimit) {
		t.Fatalf("third PutConnection = %v, want ErrTenantConnectionLimit", err)
	}
	if _, err := s.GetConnection(ctx, "c2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("refused connection was stored: %v", err)
	}
	if err := s.PutConnection(ctx, conn("o1", "t2"), 2); err != nil {
		t.Errorf("another tenant's connection refused: %v", err)
	}
	// A missed $disconnect: the items expire but the counter stays at 2. The
	// next connect recounts from the index and gets in.
	*now = now.Add(4 * time.Hour)
	c := conn("c3", "t1")
	c.TTL = now.Add(3 * time.Hour).Unix()
	if err := s.PutConnection(ctx, c, 2); err != nil {
		t.Fatalf("PutConnection after the others expired = %v, want it stored", err)
	}
	if got, _ := counters(t, s, "t1"); got != 1 {
		t.Errorf("connections counter = %d after the recount, want 1", got)
	}
}

func TestCreateRequest(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	r := pending("t1", "r1")
	got, created, err := s.CreateRequest(ctx, r, 10)
	if err != nil || !created || got.RequestID != r.RequestID {
		t.Fatalf("CreateRequest = %+v, %v, %v", got, created, err)
	}
	dup := r
	dup.Action, dup.ConnectionID = "other", "c2"
	got, created, err = s.CreateRequest(ctx, dup, 10)
	if err != nil || created || got.Action != "delay" || got.ConnectionID != "c1" {
		t.Fatalf("duplicate CreateRequest = %+v, created %v, %v; want the stored request", got, created, err)
	}
	if _, i := counters(t, s, "t1"); i != 1 {
		t.Errorf("inflight = %d after a duplicate, want 1", i)
	}
	if got.Submitter() != "c1" {
		t.Errorf("submitter = %q, want c1 (the first submission's connection)", got.Submitter())
	}
	if subs, err := s.RequestSubscriptions(ctx, r.RequestID); err != nil || len(subs) != 0 {
		t.Errorf("subscription items = %+v, %v; want none (the submitter follows implicitly)", subs, err)
	}
	if _, err := s.GetRequest(ctx, "t2", "r1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetRequest from another tenant = %v, want ErrNotFound", err)
	}
	other := pending("t2", "r1")
	if _, created, err := s.CreateRequest(ctx, other, 10); err != nil || !created {
		t.Errorf("same id in another tenant: created %v, %v; want created", created, err)
	}
	bad := pending("t1", "r2")
	bad.RequestID = "r2"
	if _, _, err := s.CreateRequest(ctx, bad, 10); err == nil {
		t.Error("CreateRequest with an unscoped key succeeded")
	}
}

func TestInflightLimit(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	for i := range 2 {
		if _, _, err := s.CreateRequest(ctx, pending("t1", fmt.Sprint("r", i)), 2); err != nil {
			t.Fatalf("CreateRequest %d: %v", i, err)
		}
	}
	if _, _, err := s.CreateRequest(ctx, pending("t1", "r2"), 2); !errors.Is(err, ErrTenantInflightLimit) {
		t.Fatalf("third CreateRequest = %v, want ErrTenantInflightLimit", err)
	}
	if _, err := s.GetRequest(ctx, "t1", "r2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("refused request was stored: %v", err)
	}
	if _, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{s.ReleaseInflightTx("t1")}}); err != nil {
		t.Fatalf("ReleaseInflightTx: %v", err)
	}
	if _, _, err := s.CreateRequest(ctx, pending("t1", "r2"), 2); err != nil {
		t.Errorf("CreateRequest after a release = %v, want nil", err)
	}
}

func TestCancelRequest(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	if _, _, err := s.CreateRequest(ctx, pending("t1", "r1"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CancelRequest(ctx, "t2", "r1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("cancel from another tenant = %v, want ErrNotFound", err)
	}
	got, err := s.CancelRequest(ctx, "t1", "r1")
	if err != nil {
		t.Fatalf("CancelRequest: %v", err)
	}
	if got.Status != StatusCancelled || got.Error == nil || got.Error.Code != "CANCELLED" || got.ProcessAfter != 0 || got.ProcessedAt == 0 {
		t.Errorf("cancelled request = %+v", got)
	}
	if _, i := counters(t, s, "t1"); i != 0 {
		t.Errorf("inflight = %d after cancel, want 0", i)
	}
	if _, err := s.CancelRequest(ctx, "t1", "r1"); !errors.Is(err, ErrFinal) {
		t.Errorf("second cancel = %v, want ErrFinal", err)
	}
	if _, i := counters(t, s, "t1"); i != 0 {
		t.Errorf("inflight = %d after a refused cancel, want 0", i)
	}
}

func TestRateLimiter(t *testing.T) {
	t.Parallel()
	s, now := newStore(t)
	ctx := context.Background()
	if err := s.PutConnection(ctx, conn("c1", "t1"), 0); err != nil {
		t.Fatal(err)
	}
	// Two limiters stand for two Lambda instances sharing the item.
	a, b := s.NewRateLimiter(2), s.NewRateLimiter(2)
	admitted := 0
	for i := range 6 {
		l := a
		if i%2 == 1 {
			l = b
		}
		adm, err := l.Take(ctx, "c1")
		if err != nil {
			t.Fatalf("Take %d: %v", i, err)
		}
		if adm.Connection.TenantID != "t1" {
			t.Errorf("Take %d connection = %+v, want c1 of t1", i, adm.Connection)
		}
		if adm.RetryAfter == 0 {
			admitted++
		}
	}
	if admitted != 4 {
		t.Errorf("admitted %d of 6 messages at once, want the burst of 4", admitted)
	}
	adm, _ := a.Take(ctx, "c1")
	if adm.RetryAfter <= 0 || adm.RetryAfter > 500*time.Millisecond {
		t.Errorf("RetryAfter = %s, want within one interval (500ms)", adm.RetryAfter)
	}
	*now = now.Add(adm.RetryAfter)
	if adm, err := b.Take(ctx, "c1"); err != nil || adm.RetryAfter != 0 {
		t.Errorf("Take after waiting = %+v, %v; want admitted", adm, err)
	}
	if _, err := a.Take(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Take on a missing connection = %v, want ErrNotFound", err)
	}
}

func TestRateLimitReservation(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	if err := s.PutConnection(ctx, conn("c1", "t1"), 0); err != nil {
		t.Fatal(err)
	}
	a, b := s.NewRateLimiter(1), s.NewRateLimiter(1)
	if _, ok := a.Reserve("c1"); ok {
		t.Fatal("Reserve on an empty cache succeeded")
	}
	if adm, err := a.Take(ctx, "c1"); err != nil || adm.RetryAfter != 0 {
		t.Fatalf("Take = %+v, %v", adm, err)
	}
	res, ok := a.Reserve("c1")
	if !ok || res.Connection.TenantID != "t1" {
		t.Fatalf("Reserve = %+v, %v; want a reservation for c1", res, ok)
	}
	// Another instance moves the state first: the reservation is stale and
	// the request is not written.
	if _, err := b.Take(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	r := pending("t1", "r1")
	if _, _, err := s.CreateRequest(ctx, r, 0, res.Tx...); !errors.Is(err, ErrStale) {
		t.Fatalf("CreateRequest with a stale reservation = %v, want ErrStale", err)
	}
	if _, err := s.GetRequest(ctx, "t1", "r1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("request written despite the stale reservation: %v", err)
	}
	// Take learns the state; the burst of 2 is now used up.
	if adm, err := a.Take(ctx, "c1"); err != nil || adm.RetryAfter == 0 {
		t.Fatalf("third message: %+v, %v; want refused", adm, err)
	}
	if _, ok := a.Reserve("c1"); ok {
		t.Error("Reserve admitted a message over the limit")
	}
}

func TestRateLimitReservationCommits(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	if err := s.PutConnection(ctx, conn("c1", "t1"), 0); err != nil {
		t.Fatal(err)
	}
	l := s.NewRateLimiter(1)
	if _, err := l.Take(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	res, ok := l.Reserve("c1")
	if !ok {
		t.Fatal("no reservation")
	}
	if _, created, err := s.CreateRequest(ctx, pending("t1", "r1"), 0, res.Tx...); err != nil || !created {
		t.Fatalf("CreateRequest with a reservation = %v, %v", created, err)
	}
	res.Commit()
	// Both tokens of the burst are spent, in the table as in the cache.
	if _, ok := l.Reserve("c1"); ok {
		t.Error("Reserve after the burst succeeded")
	}
	if adm, err := s.NewRateLimiter(1).Take(ctx, "c1"); err != nil || adm.RetryAfter == 0 {
		t.Errorf("a fresh instance admitted a third message: %+v, %v", adm, err)
	}
}

func TestCreateRequestConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	const n = 8
	results := make(chan bool, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			_, created, err := s.CreateRequest(context.Background(), pending("t1", "same"), 100)
			results <- created
			errs <- err
		}()
	}
	created := 0
	for range n {
		if <-results {
			created++
		}
		if err := <-errs; err != nil {
			t.Errorf("CreateRequest: %v", err)
		}
	}
	if created != 1 {
		t.Errorf("%d of %d concurrent submissions created the request, want exactly 1", created, n)
	}
	if _, i := counters(t, s, "t1"); i != 1 {
		t.Errorf("inflight = %d, want 1", i)
	}
}

// TestUnsubscribeSubmitter ends the submitter's implicit subscription and
// leaves the request alone for any other connection.
func TestUnsubscribeSubmitter(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	r := pending("t1", "r1")
	if _, _, err := s.CreateRequest(ctx, r, 0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		conn          string
		wantSubmitter bool
		wantAfter     string
	}{
		{"c2", false, "c1"},
		{"c1", true, ""},
		{"c1", true, ""}, // twice is fine
	}
	for _, tt := range tests {
		was, err := s.UnsubscribeSubmitter(ctx, r.RequestID, tt.conn)
		if err != nil || was != tt.wantSubmitter {
			t.Errorf("UnsubscribeSubmitter(%s) = %v, %v; want %v", tt.conn, was, err, tt.wantSubmitter)
		}
		got, err := s.GetRequest(ctx, "t1", "r1")
		if err != nil || got.Submitter() != tt.wantAfter {
			t.Errorf("after UnsubscribeSubmitter(%s): submitter %q, %v; want %q", tt.conn, got.Submitter(), err, tt.wantAfter)
		}
	}
	if was, err := s.UnsubscribeSubmitter(ctx, RequestKey("t1", "missing"), "c1"); err != nil || was {
		t.Errorf("UnsubscribeSubmitter on a missing request = %v, %v; want false, nil", was, err)
	}
}
