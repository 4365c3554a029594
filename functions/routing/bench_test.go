package routing_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/streamer-dev/streamer/functions/routing"
	"github.com/streamer-dev/streamer/functions/store"
)

// BenchmarkRouterAck measures one async message from $default to the
// acknowledgment posted to @connections — one transaction (request, tenant
// counter, and on one message in 16 the rate-limit tokens the instance
// reserves) and the post — against one PutItem of the same request item on the
// same DynamoDB Local. It reports p50/p99 of both and the p50 ratio (the
// target is at most 2). The limit, 1000 messages a second, never refuses here.
func BenchmarkRouterAck(b *testing.B) {
	benchRouter(b, 1000, ackMessage)
}

// BenchmarkRouterAckNoRateLimit is BenchmarkRouterAck with the per-connection
// rate limit off (STREAMER_RATE_LIMIT=0): the cost of the limiter's write.
func BenchmarkRouterAckNoRateLimit(b *testing.B) {
	benchRouter(b, 0, ackMessage)
}

func ackMessage(i int) string {
	return fmt.Sprintf(`{"action":"delay","id":"b%d","payload":{"seconds":1,"steps":2}}`, i)
}

// BenchmarkRouterEcho measures a sync action answered inline (rate-limit
// update, handler, post) against the same PutItem baseline.
func BenchmarkRouterEcho(b *testing.B) {
	benchRouter(b, 1000, func(i int) string {
		return fmt.Sprintf(`{"action":"echo","id":"e%d","payload":{"n":%d}}`, i, i)
	})
}

func benchRouter(b *testing.B, rate float64, message func(i int) string) {
	hs := newHarness(b, withRate(rate), withConfig(func(c *routing.Config) { c.TenantMaxInflight = 1 << 30 }))
	hs.mustConnect("bench", "acme")
	env := hs.store.Tables()
	ctx := context.Background()

	// Warm both paths (connections, caches) before measuring.
	hs.h.Handle(ctx, withBody(event("MESSAGE", "bench"), message(-1)))
	put := putItem(b, hs.db, env.Requests)
	put(-1)

	router := make([]time.Duration, 0, b.N)
	puts := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := hs.h.Handle(ctx, withBody(event("MESSAGE", "bench"), message(i))); err != nil {
			b.Fatal(err)
		}
		router = append(router, time.Since(start))
		start = time.Now()
		put(i)
		puts = append(puts, time.Since(start))
	}
	b.StopTimer()
	if n := len(hs.conns.Posts("bench")); n != b.N+1 {
		b.Fatalf("%d frames posted, want %d", n, b.N+1)
	}
	rp50, rp99 := percentiles(router)
	pp50, pp99 := percentiles(puts)
	b.ReportMetric(float64(rp50.Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(rp99.Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(pp50.Nanoseconds()), "putitem-p50-ns")
	b.ReportMetric(float64(pp99.Nanoseconds()), "putitem-p99-ns")
	b.ReportMetric(float64(rp50)/float64(pp50), "p50-ratio")
}

func withBody(ev events.APIGatewayWebsocketProxyRequest, body string) events.APIGatewayWebsocketProxyRequest {
	ev.Body = body
	return ev
}

// putItem returns a function that puts one request item like the router's.
func putItem(b *testing.B, db *dynamodb.Client, table string) func(i int) {
	return func(i int) {
		item, err := attributevalue.MarshalMap(store.Request{
			RequestID: store.RequestKey("baseline", fmt.Sprint(i)), ID: fmt.Sprint(i), TenantID: "baseline", ConnectionID: "bench", UserID: "user-1", Status: store.StatusPending,
			Action: "delay", Payload: `{"seconds":1,"steps":2}`, CreatedAt: time.Now().UnixMilli(), ProcessAfter: time.Now().UnixMilli(),
			TTL: time.Now().Add(time.Hour).Unix(),
		})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
			b.Fatal(err)
		}
	}
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)*50/100], s[min(len(s)-1, len(s)*99/100)]
}
