package processing

import (
	"context"
	"testing"
	"time"

	"github.com/streamer-dev/streamer/functions/store"
)

// TestRearm checks the wake-up Rearm sends for each status: just after the
// lease for a PROCESSING request, at ProcessAfter for a waiting one, and none
// for a final one.
func TestRearm(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := e.handler(Config{})
	past := time.Now().Add(-time.Minute).UnixMilli() // due at once: the message is visible now
	tests := []struct {
		give       store.Request
		wantDue    int64
		wantReason string
	}{
		{store.Request{Status: store.StatusProcessing, LeaseExpiresAt: past}, past + 1000, reasonLease},
		{store.Request{Status: store.StatusRetrying, ProcessAfter: past}, past, reasonRetry},
		{store.Request{Status: store.StatusPending, ProcessAfter: past}, past, reasonScheduled},
		{store.Request{Status: store.StatusCompleted}, 0, ""},
		{store.Request{Status: store.StatusCancelled}, 0, ""},
	}
	for _, tt := range tests {
		tt.give.RequestID = "t1#" + string(tt.give.Status)
		queued := e.queueCount(e.retry)
		if err := h.Rearm(context.Background(), tt.give); err != nil {
			t.Fatalf("%s: %v", tt.give.Status, err)
		}
		if tt.wantReason == "" {
			if n := e.queueCount(e.retry) - queued; n != 0 {
				t.Errorf("%s: got %d wake-ups, want none", tt.give.Status, n)
			}
			continue
		}
		msgs := e.drain(e.retry, 1)
		if len(msgs) != 1 || msgs[0]["request_key"] != tt.give.RequestID || int64(msgs[0]["due_ms"].(float64)) != tt.wantDue || msgs[0]["reason"] != tt.wantReason {
			t.Errorf("%s: got %v, want one wake-up due %d for %s", tt.give.Status, msgs, tt.wantDue, tt.wantReason)
		}
	}
}
