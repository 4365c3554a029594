package processing

import (
	"context"
	"errors"
	"time"

	"github.com/streamer-dev/streamer/functions/store"
)

// Retries of a run's final write (complete, fail, schedule a retry) once the
// SDK's own retries gave up on a transient error.
const (
	persistAttempts = 4
	persistBackoff  = 100 * time.Millisecond
)

// persist runs a run's final write until it succeeds, fails for good (the
// lease is lost, the result is too large), persistAttempts tries fail, or ctx
// ends. The run holds its outcome in memory: giving up on a throttled or
// failed write would leave the request PROCESSING until its lease expires
// and then run the handler a second time. Every final write is conditional on
// the run's lease, so repeating one is safe.
func (h *Handler) persist(ctx context.Context, write func() error) error {
	backoff := persistBackoff
	for attempt := 1; ; attempt++ {
		err := write()
		if err == nil || errors.Is(err, store.ErrLeaseLost) || errors.Is(err, store.ErrResultTooLarge) || attempt == persistAttempts {
			return err
		}
		h.logger.WarnContext(ctx, "final write failed; retrying", "attempt", attempt, "error", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		backoff *= 2
	}
}
