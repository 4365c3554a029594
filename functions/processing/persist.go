package processing

import (
	"context"
	"errors"
	"time"

	"github.com/streamer-dev/streamer/functions/store"
)

// Retries of a run's writes (its claim, and its final complete, fail or
// retry) once the SDK's own retries gave up on a transient error.
const (
	persistAttempts = 4
	persistBackoff  = 100 * time.Millisecond
)

// persist runs one of a run's writes until it succeeds, fails for good (the
// lease is lost, the result is too large), persistAttempts tries fail, or ctx
// ends. Giving up on a throttled or failed write would leave the request
// waiting for its lease to expire: a claim may have been applied although its
// answer was lost, and a final write drops the outcome the run holds in
// memory, so the handler would run a second time. Every one of these writes
// is conditional on the run's own lease, so repeating it is safe.
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
