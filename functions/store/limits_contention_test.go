package store

import (
	"context"
	"sync"
	"testing"
)

// TestRateLimiterConcurrentMessages proves a connection's messages handled
// at the same time (API Gateway invokes the router for each, side by side;
// the local gateway runs up to 16 at once) are all admitted within the
// burst, however many of them race for the connection item, instead of the
// race's losers getting an error.
func TestRateLimiterConcurrentMessages(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	if err := s.PutConnection(ctx, conn("c1", "t1"), 0); err != nil {
		t.Fatal(err)
	}
	// Two limiters stand for two router instances sharing the item.
	limiters := []*RateLimiter{s.NewRateLimiter(1000), s.NewRateLimiter(1000)}
	const messages = 32
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		held int
	)
	for i := range messages {
		wg.Add(1)
		go func() {
			defer wg.Done()
			adm, err := limiters[i%2].Take(ctx, "c1")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err)
			case adm.RetryAfter > 0:
				held++
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 || held > 0 {
		t.Errorf("%d concurrent messages within the burst: %d errors (%v), %d held back; want all admitted", messages, len(errs), errs, held)
	}
}
