package store

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// queued stores a PENDING request through CreateRequest, so the tenant's
// in-flight counter counts it as the router's would.
func queued(t *testing.T, s *Store, tenant, id string) Request {
	t.Helper()
	r := pending(tenant, id)
	if _, _, err := s.CreateRequest(context.Background(), r, 0); err != nil {
		t.Fatalf("CreateRequest: %v", err)
	}
	return r
}

func reload(t *testing.T, s *Store, key string) Request {
	t.Helper()
	r, err := s.RequestByKey(context.Background(), key)
	if err != nil {
		t.Fatalf("RequestByKey: %v", err)
	}
	return r
}

func TestClaimRace(t *testing.T) {
	t.Parallel()
	s, now := newStore(t)
	r := queued(t, s, "t1", "r1")
	const claimants = 8
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		won []string
	)
	for i := range claimants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := string(rune('a' + i))
			_, ok, err := s.Claim(context.Background(), r.RequestID, owner, now.Add(time.Minute))
			if err != nil {
				t.Errorf("Claim: %v", err)
			}
			if ok {
				mu.Lock()
				won = append(won, owner)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(won) != 1 {
		t.Fatalf("%d claims won (%v), want exactly 1", len(won), won)
	}
	got := reload(t, s, r.RequestID)
	if got.Status != StatusProcessing || got.LeaseOwner != won[0] || got.Attempt != 1 || got.ProcessAfter != 0 {
		t.Errorf("after claim: status %s owner %q attempt %d process_after %d; want PROCESSING %q 1 0",
			got.Status, got.LeaseOwner, got.Attempt, got.ProcessAfter, won[0])
	}
}

func TestClaimLost(t *testing.T) {
	t.Parallel()
	s, now := newStore(t)
	ctx := context.Background()
	future := queued(t, s, "t1", "future")
	// Re-store it due in an hour: a scheduled request.
	if _, _, err := s.Claim(ctx, future.RequestID, "x", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.ScheduleRetry(ctx, future.RequestID, "x", now.Add(time.Hour), ErrorInfo{Code: "E", Message: "m"}); err != nil {
		t.Fatal(err)
	}
	running := queued(t, s, "t1", "running")
	if _, ok, err := s.Claim(ctx, running.RequestID, "first", now.Add(time.Minute)); err != nil || !ok {
		t.Fatalf("Claim: %v %v", ok, err)
	}
	tests := []struct {
		name       string
		key        string
		wantStatus Status
	}{
		{name: "not yet due", key: future.RequestID, wantStatus: StatusRetrying},
		{name: "live lease", key: running.RequestID, wantStatus: StatusProcessing},
		{name: "missing", key: RequestKey("t1", "none"), wantStatus: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := s.Claim(ctx, tt.key, "second", now.Add(time.Minute))
			if err != nil {
				t.Fatalf("Claim: %v", err)
			}
			if ok {
				t.Fatal("claimed, want lost")
			}
			if got.Status != tt.wantStatus {
				t.Errorf("returned status %q, want %q", got.Status, tt.wantStatus)
			}
		})
	}
}

func TestClaimSkipsExpiredTTL(t *testing.T) {
	t.Parallel()
	s, now := newStore(t)
	r := queued(t, s, "t1", "r1")
	*now = time.Unix(r.TTL+1, 0)
	if _, ok, err := s.Claim(context.Background(), r.RequestID, "o", now.Add(time.Minute)); err != nil || ok {
		t.Fatalf("Claim of an expired request: claimed %v, err %v; want lost", ok, err)
	}
}

func TestLeaseExpiryReclaim(t *testing.T) {
	t.Parallel()
	s, now := newStore(t)
	ctx := context.Background()
	r := queued(t, s, "t1", "r1")
	if _, ok, err := s.Claim(ctx, r.RequestID, "crashed", now.Add(10*time.Second)); err != nil || !ok {
		t.Fatalf("Claim: %v %v", ok, err)
	}
	if err := s.SaveProgress(ctx, r.RequestID, "crashed", Progress{Percent: 40, Message: "half", Checkpoint: `{"step":4}`}); err != nil {
		t.Fatalf("SaveProgress: %v", err)
	}
	*now = now.Add(11 * time.Second)
	got, ok, err := s.Claim(ctx, r.RequestID, "rescuer", now.Add(time.Minute))
	if err != nil || !ok {
		t.Fatalf("reclaim: %v %v", ok, err)
	}
	if got.Attempt != 2 || got.Checkpoint != `{"step":4}` || got.Progress != 40 {
		t.Errorf("reclaimed: attempt %d checkpoint %q progress %v; want 2 {\"step\":4} 40", got.Attempt, got.Checkpoint, got.Progress)
	}
	if err := s.Complete(ctx, r, "crashed", `1`); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("Complete by the old owner: %v, want ErrLeaseLost", err)
	}
	if err := s.SaveProgress(ctx, r.RequestID, "crashed", Progress{Percent: 50}); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("SaveProgress by the old owner: %v, want ErrLeaseLost", err)
	}
}

func TestFinalTransitions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		finish     func(s *Store, r Request) error
		wantStatus Status
		wantResult string
		wantError  *ErrorInfo
	}{
		{
			name:       "complete",
			finish:     func(s *Store, r Request) error { return s.Complete(context.Background(), r, "me", `{"ok":true}`) },
			wantStatus: StatusCompleted,
			wantResult: `{"ok":true}`,
		},
		{
			name: "fail",
			finish: func(s *Store, r Request) error {
				return s.Fail(context.Background(), r, "me", ErrorInfo{Code: "INTERNAL_ERROR", Message: "boom"})
			},
			wantStatus: StatusFailed,
			wantError:  &ErrorInfo{Code: "INTERNAL_ERROR", Message: "boom"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, now := newStore(t)
			ctx := context.Background()
			r := queued(t, s, "t1", "r1")
			if _, inflight := counters(t, s, "t1"); inflight != 1 {
				t.Fatalf("inflight %d before, want 1", inflight)
			}
			if _, ok, err := s.Claim(ctx, r.RequestID, "me", now.Add(time.Minute)); err != nil || !ok {
				t.Fatalf("Claim: %v %v", ok, err)
			}
			if err := tt.finish(s, r); err != nil {
				t.Fatalf("finish: %v", err)
			}
			got := reload(t, s, r.RequestID)
			if got.Status != tt.wantStatus || got.Result != tt.wantResult || got.LeaseOwner != "" || got.ProcessedAt != now.UnixMilli() {
				t.Errorf("got status %s result %q owner %q processed %d; want %s %q \"\" %d",
					got.Status, got.Result, got.LeaseOwner, got.ProcessedAt, tt.wantStatus, tt.wantResult, now.UnixMilli())
			}
			if (got.Error == nil) != (tt.wantError == nil) || got.Error != nil && *got.Error != *tt.wantError {
				t.Errorf("error %+v, want %+v", got.Error, tt.wantError)
			}
			if _, inflight := counters(t, s, "t1"); inflight != 0 {
				t.Errorf("inflight %d after, want 0", inflight)
			}
			// A final request never changes again, and is counted once. Its
			// own run finishing it again (a write retried after its answer
			// was lost) is told it succeeded; nothing is written.
			if err := tt.finish(s, r); err != nil {
				t.Errorf("second finish by the same run: %v, want success", err)
			}
			if again := reload(t, s, r.RequestID); again.Status != got.Status || again.ProcessedAt != got.ProcessedAt {
				t.Errorf("second finish changed the request: %s at %d", again.Status, again.ProcessedAt)
			}
			if _, ok, _ := s.Claim(ctx, r.RequestID, "other", now.Add(time.Minute)); ok {
				t.Error("claimed a final request")
			}
			if _, inflight := counters(t, s, "t1"); inflight != 0 {
				t.Errorf("inflight %d after a repeated finish, want 0", inflight)
			}
		})
	}
}

func TestScheduleRetryThenClaim(t *testing.T) {
	t.Parallel()
	s, now := newStore(t)
	ctx := context.Background()
	r := queued(t, s, "t1", "r1")
	if _, ok, err := s.Claim(ctx, r.RequestID, "me", now.Add(time.Minute)); err != nil || !ok {
		t.Fatalf("Claim: %v %v", ok, err)
	}
	due := now.Add(3 * time.Second)
	if err := s.ScheduleRetry(ctx, r.RequestID, "me", due, ErrorInfo{Code: "TIMEOUT", Message: "slow"}); err != nil {
		t.Fatalf("ScheduleRetry: %v", err)
	}
	got := reload(t, s, r.RequestID)
	if got.Status != StatusRetrying || got.ProcessAfter != due.UnixMilli() || got.RetryCount != 1 || got.LeaseOwner != "" {
		t.Errorf("after retry: %s process_after %d retries %d owner %q", got.Status, got.ProcessAfter, got.RetryCount, got.LeaseOwner)
	}
	if _, ok, _ := s.Claim(ctx, r.RequestID, "early", now.Add(time.Minute)); ok {
		t.Error("claimed before due")
	}
	*now = due
	got, ok, err := s.Claim(ctx, r.RequestID, "due", now.Add(time.Minute))
	if err != nil || !ok || got.Attempt != 2 {
		t.Errorf("claim when due: ok %v err %v attempt %d, want true nil 2", ok, err, got.Attempt)
	}
}

func TestCancelStopsOwner(t *testing.T) {
	t.Parallel()
	s, now := newStore(t)
	ctx := context.Background()
	r := queued(t, s, "t1", "r1")
	if _, ok, err := s.Claim(ctx, r.RequestID, "me", now.Add(time.Minute)); err != nil || !ok {
		t.Fatalf("Claim: %v %v", ok, err)
	}
	if owned, err := s.Owned(ctx, r.RequestID, "me"); err != nil || !owned {
		t.Fatalf("Owned before cancel: %v %v", owned, err)
	}
	if _, err := s.CancelRequest(ctx, "t1", "r1"); err != nil {
		t.Fatalf("CancelRequest: %v", err)
	}
	if owned, err := s.Owned(ctx, r.RequestID, "me"); err != nil || owned {
		t.Errorf("Owned after cancel: %v %v, want false", owned, err)
	}
	if err := s.Complete(ctx, r, "me", `1`); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("Complete after cancel: %v, want ErrLeaseLost", err)
	}
	if got := reload(t, s, r.RequestID); got.Status != StatusCancelled {
		t.Errorf("status %s, want CANCELLED", got.Status)
	}
	if _, inflight := counters(t, s, "t1"); inflight != 0 {
		t.Errorf("inflight %d, want 0 (cancel released it once)", inflight)
	}
}

func TestCompleteResultTooLarge(t *testing.T) {
	t.Parallel()
	s, now := newStore(t)
	ctx := context.Background()
	r := queued(t, s, "t1", "r1")
	if _, ok, err := s.Claim(ctx, r.RequestID, "me", now.Add(time.Minute)); err != nil || !ok {
		t.Fatalf("Claim: %v %v", ok, err)
	}
	big := `"` + strings.Repeat("x", MaxResultBytes) + `"`
	if err := s.Complete(ctx, r, "me", big); !errors.Is(err, ErrResultTooLarge) {
		t.Fatalf("Complete: %v, want ErrResultTooLarge", err)
	}
	if got := reload(t, s, r.RequestID); got.Status != StatusProcessing {
		t.Errorf("status %s, want PROCESSING (nothing written)", got.Status)
	}
}

// TestDueRequests reads due waiting work of one priority from the
// priority-queue index, earliest first: retries and settled PENDING requests,
// not fresh ones, not future ones, not other priorities.
func TestDueRequests(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	now := time.Now()
	ms := now.UnixMilli()
	put := func(id string, priority int, status Status, created, after int64) {
		r := pending("t1", id)
		r.Priority, r.Status, r.CreatedAt, r.ProcessAfter = priority, status, created, after
		if _, _, err := s.CreateRequest(ctx, r, 0); err != nil {
			t.Fatal(err)
		}
	}
	put("retry", 3, StatusRetrying, ms-60_000, ms-500)
	put("scheduled", 3, StatusPending, ms-60_000, ms-2000)
	put("fresh", 3, StatusPending, ms-100, ms-100)
	put("future", 3, StatusRetrying, ms-60_000, ms+60_000)
	put("other-priority", 4, StatusRetrying, ms-60_000, ms-3000)
	tests := []struct {
		limit int
		want  []string
	}{
		{10, []string{"scheduled", "retry"}},
		{1, []string{"scheduled"}},
	}
	for _, tt := range tests {
		got, err := s.DueRequests(ctx, 3, now, now.Add(-5*time.Second), tt.limit)
		var ids []string
		for _, r := range got {
			ids = append(ids, r.ID)
		}
		if err != nil || !slices.Equal(ids, tt.want) {
			t.Errorf("DueRequests(limit %d) = %v, %v; want %v", tt.limit, ids, err, tt.want)
		}
	}
}
