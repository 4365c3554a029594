package progress

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/functions/notify"
	"github.com/streamer-dev/streamer/functions/protocol"
	"github.com/streamer-dev/streamer/functions/store"
	"github.com/streamer-dev/streamer/internal/ddbtest"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// recorder is a Broadcaster that records frames, standing in for @connections.
type recorder struct {
	mu     sync.Mutex
	frames []protocol.Progress
}

func (r *recorder) Broadcast(_ context.Context, _ notify.Audience, eventType string, frame any) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if eventType == protocol.EventProgress {
		r.frames = append(r.frames, *frame.(*protocol.Progress))
	}
	return 1, nil
}

func (r *recorder) percents() []float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]float64, len(r.frames))
	for i, f := range r.frames {
		out[i] = f.Percentage
	}
	return out
}

// claimed stores a request and claims it, returning the store and the run.
func claimed(t *testing.T) (*store.Store, Run) {
	t.Helper()
	env := ddbtest.Tables(t)
	st := store.New(env.Client, config.Tables{Connections: env.Tables.Connections, Requests: env.Tables.Requests, Subscriptions: env.Tables.Subscriptions})
	now := time.Now()
	r := store.Request{RequestID: store.RequestKey("t1", "r1"), ID: "r1", TenantID: "t1", ConnectionID: "c1", Status: store.StatusPending,
		Action: "a", CreatedAt: now.UnixMilli(), ProcessAfter: now.UnixMilli(), TTL: now.Add(time.Hour).Unix()}
	ctx := context.Background()
	if _, _, err := st.CreateRequest(ctx, r, 0); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := st.Claim(ctx, r.RequestID, "me", now.Add(time.Minute)); err != nil || !ok {
		t.Fatalf("Claim: %v %v", ok, err)
	}
	return st, Run{Key: r.RequestID, ID: r.ID, Owner: "me"}
}

func TestCoalescesAndKeepsOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		give     []float64
		wantLast float64
	}{
		{name: "ends at 100", give: []float64{0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100}, wantLast: 100},
		{name: "last update below 100 is kept", give: []float64{5, 15, 25, 35}, wantLast: 35},
		{name: "clamped", give: []float64{-5, 250}, wantLast: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st, run := claimed(t)
			rec := &recorder{}
			// One frame per minute: everything after the first is coalesced.
			rep := New(context.Background(), Config{Rate: 1.0 / 60}, run, rec, st, discard)
			for _, p := range tt.give {
				rep.Report(p, "step", nil)
			}
			rep.Close(false)
			got := rec.percents()
			if len(got) == 0 || got[len(got)-1] != tt.wantLast {
				t.Fatalf("frames %v, want the last to be %v", got, tt.wantLast)
			}
			if len(got) >= len(tt.give) && len(tt.give) > 3 {
				t.Errorf("frames %v: nothing was coalesced from %d updates", got, len(tt.give))
			}
			for i := 1; i < len(got); i++ {
				if got[i] < got[i-1] {
					t.Errorf("frames out of order: %v", got)
				}
			}
			if frames, delivered := rep.Stats(); frames != len(got) || delivered != len(got) {
				t.Errorf("stats %d/%d, want %d", frames, delivered, len(got))
			}
		})
	}
}

func TestHundredPercentNeverCoalesced(t *testing.T) {
	t.Parallel()
	st, run := claimed(t)
	rec := &recorder{}
	rep := New(context.Background(), Config{Rate: 1.0 / 60}, run, rec, st, discard)
	rep.Report(10, "", nil)
	rep.Report(100, "done with phase one", nil)
	rep.Report(20, "phase two", nil)
	rep.Close(false)
	got := rec.percents()
	found := false
	for _, p := range got {
		found = found || p == 100
	}
	if !found || got[len(got)-1] != 20 {
		t.Errorf("frames %v: want a 100 frame and 20 last", got)
	}
}

func TestPersistsProgressAndCheckpoint(t *testing.T) {
	t.Parallel()
	st, run := claimed(t)
	ctx := context.Background()
	// Persist at most once an hour: only Close writes.
	rep := New(ctx, Config{PersistEvery: time.Hour}, run, &recorder{}, st, discard)
	rep.Report(30, "first", nil)
	if err := rep.Checkpoint(map[string]int{"page": 3}); err != nil {
		t.Fatal(err)
	}
	rep.Report(60, "second", map[string]any{"rows": 6})
	if err := rep.Checkpoint(make(chan int)); err == nil {
		t.Error("Checkpoint of an unmarshalable value: nil error")
	}
	rep.Close(true)
	got, err := st.RequestByKey(ctx, run.Key)
	if err != nil {
		t.Fatal(err)
	}
	if got.Progress != 60 || got.ProgressMessage != "second" || got.Checkpoint != `{"page":3}` {
		t.Errorf("stored progress %v %q checkpoint %q; want 60 second {\"page\":3}", got.Progress, got.ProgressMessage, got.Checkpoint)
	}
}

func TestLeaseLostStopsWrites(t *testing.T) {
	t.Parallel()
	st, run := claimed(t)
	ctx := context.Background()
	if _, err := st.CancelRequest(ctx, "t1", run.ID); err != nil {
		t.Fatal(err)
	}
	rep := New(ctx, Config{}, run, &recorder{}, st, discard)
	rep.Report(50, "after cancel", nil)
	rep.Close(true)
	if !rep.LeaseLost() {
		t.Error("LeaseLost false after writing to a cancelled request")
	}
	got, err := st.RequestByKey(ctx, run.Key)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.StatusCancelled || got.Progress != 0 {
		t.Errorf("cancelled request changed: %s progress %v", got.Status, got.Progress)
	}
}
