package store

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
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

// TestRateLimiterReservesTokens: a write reserves a quarter of the burst for
// the instance that makes it, which admits the next messages without writing;
// two instances together still admit no more than the burst at once, and
// reserved tokens lapse after the burst window.
func TestRateLimiterReservesTokens(t *testing.T) {
	t.Parallel()
	s, now := newStore(t)
	ctx := context.Background()
	if err := s.PutConnection(ctx, conn("c1", "t1"), 0); err != nil {
		t.Fatal(err)
	}
	stored := func() int {
		c, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.tables.Connections), Key: connKey("c1"), ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		return numberAttr(c.Item, AttrRateTAT)
	}
	a, b := s.NewRateLimiter(8), s.NewRateLimiter(8) // burst 16, 4 tokens a write
	take := func(l *RateLimiter) bool {
		adm, err := l.Take(ctx, "c1")
		if err != nil {
			t.Fatal(err)
		}
		return adm.RetryAfter == 0
	}
	if !take(a) {
		t.Fatal("first message refused")
	}
	after := stored()
	for i := range 3 {
		if !take(a) || stored() != after {
			t.Fatalf("message %d: not admitted from the reservation without a write", i+2)
		}
	}
	if !take(a) || stored() == after {
		t.Fatal("fifth message: want a new reservation written")
	}
	admitted := 5
	for range 40 {
		for _, l := range []*RateLimiter{a, b} {
			if take(l) {
				admitted++
			}
		}
	}
	if admitted != 16 {
		t.Errorf("two instances admitted %d messages at once, want the burst of 16", admitted)
	}
	// Long after, a's leftover reservation (if any) has lapsed: the next
	// message is admitted against the refilled bucket with a write.
	*now = now.Add(10 * time.Second)
	before := stored()
	if !take(a) || stored() == before {
		t.Error("message after the burst window: want it admitted with a write")
	}
}
