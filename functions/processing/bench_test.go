package processing

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/streamer-dev/streamer/functions/actions"
	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/functions/metrics"
	"github.com/streamer-dev/streamer/functions/notify"
	"github.com/streamer-dev/streamer/functions/store"
	"github.com/streamer-dev/streamer/internal/ddblocal"
)

// writeCounter counts DynamoDB write calls and item writes (a transaction
// counts each of its items) passing through the HTTP client.
type writeCounter struct {
	next         http.RoundTripper
	calls, items atomic.Int64
}

func (c *writeCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	op := strings.TrimPrefix(req.Header.Get("X-Amz-Target"), "DynamoDB_20120810.")
	switch op {
	case "PutItem", "UpdateItem", "DeleteItem":
		c.calls.Add(1)
		c.items.Add(1)
	case "TransactWriteItems", "BatchWriteItem":
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		var in struct {
			TransactItems []json.RawMessage
			RequestItems  map[string][]json.RawMessage
		}
		if err := json.Unmarshal(body, &in); err != nil {
			return nil, err
		}
		n := len(in.TransactItems)
		for _, reqs := range in.RequestItems {
			n += len(reqs)
		}
		c.calls.Add(1)
		c.items.Add(int64(n))
	}
	return c.next.RoundTrip(req)
}

// sendCounter counts SQS messages sent.
type sendCounter struct {
	Queue
	sends atomic.Int64
}

func (c *sendCounter) SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	c.sends.Add(1)
	return c.Queue.SendMessage(ctx, in, optFns...)
}

// benchHandler is a processor whose DynamoDB writes and SQS sends are counted.
func benchHandler(e *env, counter *writeCounter, sends *sendCounter) *Handler {
	client := dynamodb.NewFromConfig(ddblocal.AWSConfig(), func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(e.ddb.Endpoint)
		o.HTTPClient = &http.Client{Transport: counter}
	})
	st := store.New(client, config.Tables{Connections: e.ddb.Tables.Connections, Requests: e.ddb.Tables.Requests, Subscriptions: e.ddb.Tables.Subscriptions})
	cfg := Config{RetryQueueURL: e.retry, DeadLetterQueueURL: e.dlq}
	sends.Queue = e.sqs
	return New(e.reg, st, notify.New(e.poster, st, discard), sends, metrics.Discard(), cfg, discard)
}

// submitBatch stores n requests and returns their INSERT records in batches
// of 100, as the event source mapping would deliver them.
func submitBatch(b *testing.B, e *env, n int, action string) []events.DynamoDBEvent {
	for i := range n {
		e.submit("r"+strconv.Itoa(i), action)
	}
	recs := inserts(e.records())
	var evs []events.DynamoDBEvent
	for len(recs) > 0 {
		k := min(100, len(recs))
		evs = append(evs, events.DynamoDBEvent{Records: recs[:k]})
		recs = recs[k:]
	}
	return evs
}

// BenchmarkProcessorNoop measures requests per second through the processor
// for a no-op action: claim, run, complete with the in-flight release, and the
// complete frame, on DynamoDB Local with 10 records of a batch at once.
func BenchmarkProcessorNoop(b *testing.B) {
	e := newEnv(b)
	e.reg.MustRegister("noop", func(context.Context, actions.Request, actions.Reporter) (any, error) { return nil, nil }, actions.Options{})
	evs := submitBatch(b, e, b.N, "noop")
	h := benchHandler(e, &writeCounter{next: http.DefaultTransport}, &sendCounter{})
	b.ResetTimer()
	start := time.Now()
	for _, ev := range evs {
		if resp, err := h.HandleStream(context.Background(), ev); err != nil || len(resp.BatchItemFailures) > 0 {
			b.Fatalf("HandleStream: %v %v", err, resp.BatchItemFailures)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

// BenchmarkWritesPerLifecycle counts the processor's DynamoDB writes for one
// request that reports progress five times and completes: the claim, the
// coalesced progress writes, and the final transaction (request + tenant
// counter). It also reports the SQS messages sent (the lease watchdog).
func BenchmarkWritesPerLifecycle(b *testing.B) {
	e := newEnv(b)
	e.reg.MustRegister("steps", func(ctx context.Context, req actions.Request, rep actions.Reporter) (any, error) {
		for i := range 5 {
			rep.Report(float64(i+1)*20, "step", nil)
		}
		return "done", nil
	}, actions.Options{})
	evs := submitBatch(b, e, b.N, "steps")
	counter := &writeCounter{next: http.DefaultTransport}
	sends := &sendCounter{}
	h := benchHandler(e, counter, sends)
	b.ResetTimer()
	for _, ev := range evs {
		if resp, err := h.HandleStream(context.Background(), ev); err != nil || len(resp.BatchItemFailures) > 0 {
			b.Fatalf("HandleStream: %v %v", err, resp.BatchItemFailures)
		}
	}
	b.ReportMetric(float64(counter.items.Load())/float64(b.N), "writes/req")
	b.ReportMetric(float64(counter.calls.Load())/float64(b.N), "write-calls/req")
	b.ReportMetric(float64(sends.sends.Load())/float64(b.N), "sqs-sends/req")
}
