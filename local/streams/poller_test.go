package streams

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	dbstypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/streamer-dev/streamer/functions/schema"
	"github.com/streamer-dev/streamer/functions/store"
	"github.com/streamer-dev/streamer/internal/ddblocal"
	"github.com/streamer-dev/streamer/internal/ddbtest"
)

// recorder is a stream handler that records each invocation's request ids and
// answers with fail's verdict.
type recorder struct {
	mu      sync.Mutex
	calls   [][]string
	records []events.DynamoDBEventRecord
	fail    func(call int, ids []string) (events.DynamoDBEventResponse, error)
}

func (r *recorder) handle(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	if _, ok := ctx.Deadline(); !ok {
		return events.DynamoDBEventResponse{}, fmt.Errorf("no deadline")
	}
	ids := make([]string, len(ev.Records))
	for i, rec := range ev.Records {
		ids[i] = rec.Change.NewImage[schema.AttrRequestID].String()
	}
	r.mu.Lock()
	r.calls = append(r.calls, ids)
	r.records = append(r.records, ev.Records...)
	n := len(r.calls)
	r.mu.Unlock()
	if r.fail == nil {
		return events.DynamoDBEventResponse{}, nil
	}
	resp, err := r.fail(n, ids)
	for i := range resp.BatchItemFailures {
		id := resp.BatchItemFailures[i].ItemIdentifier
		for _, rec := range ev.Records {
			if rec.Change.NewImage[schema.AttrRequestID].String() == id {
				resp.BatchItemFailures[i].ItemIdentifier = rec.Change.SequenceNumber
			}
		}
	}
	return resp, err
}

func (r *recorder) snapshot() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// put writes request items; pending ones pass the stream filter.
func put(t *testing.T, c *dynamodb.Client, table string, ids []string, status string) {
	t.Helper()
	for _, id := range ids {
		_, err := c.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]types.AttributeValue{
			schema.AttrRequestID: &types.AttributeValueMemberS{Value: id},
			schema.AttrStatus:    &types.AttributeValueMemberS{Value: status},
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// run starts a poller and returns a wait function that polls cond.
func run(t *testing.T, r *recorder, onFailure OnFailure) (Env ddbtest.Env, wait func(cond func() bool)) {
	t.Helper()
	env := ddbtest.Tables(t)
	p := NewPoller(ddblocal.NewStreamsClient(env.Endpoint), env.Tables.Requests, r.handle, onFailure, slog.New(slog.NewTextHandler(io.Discard, nil)))
	p.Interval = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return env, func(cond func() bool) {
		t.Helper()
		for end := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("condition not met; calls %v", r.snapshot())
			}
		}
	}
}

func TestPollerFiltersAndBatches(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	env, wait := run(t, r, nil)
	var want []string
	for i := range 25 {
		want = append(want, fmt.Sprintf("r%02d", i))
	}
	put(t, env.Client, env.Tables.Requests, []string{"done1"}, "COMPLETED")
	put(t, env.Client, env.Tables.Requests, want, "PENDING")
	put(t, env.Client, env.Tables.Requests, want[:3], "PROCESSING") // MODIFY records never pass
	var got []string
	wait(func() bool {
		got = slices.Concat(r.snapshot()...)
		return len(got) >= len(want)
	})
	time.Sleep(200 * time.Millisecond) // nothing more must come
	got = nil
	for _, call := range r.snapshot() {
		if len(call) > DefaultBatchSize {
			t.Errorf("batch of %d records, more than %d", len(call), DefaultBatchSize)
		}
		got = append(got, call...)
	}
	slices.Sort(got) // lanes run side by side: only the order of one key is kept
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want each of %v once", got, want)
	}
}

func TestPollerRedeliversFromFirstFailure(t *testing.T) {
	t.Parallel()
	var failed atomic.Bool
	r := &recorder{fail: func(_ int, ids []string) (events.DynamoDBEventResponse, error) {
		if !failed.Load() && slices.Contains(ids, "b") {
			failed.Store(true)
			var resp events.DynamoDBEventResponse
			for _, id := range ids[slices.Index(ids, "b"):] {
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.DynamoDBBatchItemFailure{ItemIdentifier: id})
			}
			return resp, nil
		}
		return events.DynamoDBEventResponse{}, nil
	}}
	env, wait := run(t, r, nil)
	put(t, env.Client, env.Tables.Requests, []string{"a", "b", "c"}, "PENDING")
	count := func(calls []string, id string) int {
		return len(slices.DeleteFunc(slices.Clone(calls), func(s string) bool { return s != id }))
	}
	wait(func() bool { c := slices.Concat(r.snapshot()...); return count(c, "b") >= 2 && slices.Contains(c, "c") })
	time.Sleep(200 * time.Millisecond) // nothing more must come
	got := slices.Concat(r.snapshot()...)
	// "b" failed once: it comes again; "a" never does.
	if count(got, "a") != 1 || count(got, "b") != 2 {
		t.Errorf("got deliveries %v, want a once and b twice", got)
	}
}

func TestPollerSendsExhaustedBatchToOnFailure(t *testing.T) {
	t.Parallel()
	r := &recorder{fail: func(_ int, ids []string) (events.DynamoDBEventResponse, error) {
		if slices.Contains(ids, "bad") {
			return events.DynamoDBEventResponse{}, fmt.Errorf("boom")
		}
		return events.DynamoDBEventResponse{}, nil
	}}
	var mu sync.Mutex
	var bodies []string
	env, wait := run(t, r, func(_ context.Context, body string) error {
		mu.Lock()
		defer mu.Unlock()
		bodies = append(bodies, body)
		return nil
	})
	put(t, env.Client, env.Tables.Requests, []string{"bad", "after"}, "PENDING")
	wait(func() bool {
		return slices.Contains(slices.Concat(r.snapshot()...), "after") && func() bool { mu.Lock(); defer mu.Unlock(); return len(bodies) > 0 }()
	})
	mu.Lock()
	defer mu.Unlock()
	var rec failureRecord
	if err := json.Unmarshal([]byte(bodies[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.RequestContext.Condition != "RetryAttemptsExhausted" || rec.BatchInfo.BatchSize != 1 || rec.BatchInfo.StreamArn == "" {
		t.Errorf("failure record %s", bodies[0])
	}
	bad := len(slices.DeleteFunc(slices.Concat(r.snapshot()...), func(s string) bool { return s != "bad" }))
	if bad != DefaultRetryAttempts+1 && bad != DefaultRetryAttempts+2 {
		t.Errorf("bad invoked %d times, want %d retries after the first", bad, DefaultRetryAttempts)
	}
}

// TestPollerDeliversRealImages writes a request the way the store does and
// checks the typed attributes of the stream record the handler receives.
func TestPollerDeliversRealImages(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	env, wait := run(t, r, nil)
	item, err := attributevalue.MarshalMap(store.Request{
		RequestID: store.RequestKey("acme", "img-1"), ID: "img-1", TenantID: "acme", ConnectionID: "c1", UserID: "u1", Status: store.StatusPending,
		CreatedAt: 1700000000123, Action: "delay", Payload: `{"seconds":1}`, Metadata: map[string]string{"k": "v"}, Priority: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(env.Tables.Requests), Item: item}); err != nil {
		t.Fatal(err)
	}
	wait(func() bool { return len(r.snapshot()) == 1 })
	r.mu.Lock()
	rec := r.records[0]
	r.mu.Unlock()
	img := rec.Change.NewImage
	if rec.EventName != "INSERT" || rec.EventSource != "aws:dynamodb" || rec.EventSourceArn == "" || rec.Change.SequenceNumber == "" ||
		rec.Change.StreamViewType != "NEW_AND_OLD_IMAGES" || rec.Change.Keys[schema.AttrRequestID].String() != "acme#img-1" {
		t.Errorf("record envelope %+v", rec)
	}
	if img["CreatedAt"].Number() != "1700000000123" || img["Priority"].Number() != "3" || img["Metadata"].Map()["k"].String() != "v" ||
		img["Payload"].String() != `{"seconds":1}` || img[schema.AttrStatus].String() != string(store.StatusPending) {
		t.Errorf("new image %+v", img)
	}
}

// TestPollerLanes checks that a slow batch holds up only its own lane, as with
// ParallelizationFactor 2.
func TestPollerLanes(t *testing.T) {
	t.Parallel()
	key := func(id string) map[string]dbstypes.AttributeValue {
		return map[string]dbstypes.AttributeValue{schema.AttrRequestID: &dbstypes.AttributeValueMemberS{Value: id}}
	}
	slow, fast := "slow", ""
	for i := 0; fast == ""; i++ {
		if id := fmt.Sprintf("fast-%d", i); laneOf(key(id), DefaultParallelizationFactor) != laneOf(key(slow), DefaultParallelizationFactor) {
			fast = id
		}
	}
	release := make(chan struct{})
	r := &recorder{fail: func(_ int, ids []string) (events.DynamoDBEventResponse, error) {
		if slices.Contains(ids, slow) {
			<-release
		}
		return events.DynamoDBEventResponse{}, nil
	}}
	env, wait := run(t, r, nil)
	defer close(release)
	put(t, env.Client, env.Tables.Requests, []string{slow}, "PENDING")
	wait(func() bool { return slices.Contains(slices.Concat(r.snapshot()...), slow) })
	put(t, env.Client, env.Tables.Requests, []string{fast}, "PENDING")
	wait(func() bool { return slices.Contains(slices.Concat(r.snapshot()...), fast) })
}

// TestPollerGathersWhileBusy checks that the records arriving, poll after
// poll, while a lane's batch runs make up that lane's next batch, as Lambda
// reads what accumulated in the shard; not one invocation per poll, which
// would run them one after another behind every slow one.
func TestPollerGathersWhileBusy(t *testing.T) {
	t.Parallel()
	key := func(id string) map[string]dbstypes.AttributeValue {
		return map[string]dbstypes.AttributeValue{schema.AttrRequestID: &dbstypes.AttributeValueMemberS{Value: id}}
	}
	slow := "slow"
	var queued []string
	for i := 0; len(queued) < 5; i++ {
		if id := fmt.Sprintf("queued-%d", i); laneOf(key(id), DefaultParallelizationFactor) == laneOf(key(slow), DefaultParallelizationFactor) {
			queued = append(queued, id)
		}
	}
	release := make(chan struct{})
	r := &recorder{fail: func(_ int, ids []string) (events.DynamoDBEventResponse, error) {
		if slices.Contains(ids, slow) {
			<-release
		}
		return events.DynamoDBEventResponse{}, nil
	}}
	env, wait := run(t, r, nil)
	put(t, env.Client, env.Tables.Requests, []string{slow}, "PENDING")
	wait(func() bool { return slices.Contains(slices.Concat(r.snapshot()...), slow) })
	for _, id := range queued {
		put(t, env.Client, env.Tables.Requests, []string{id}, "PENDING")
		time.Sleep(60 * time.Millisecond) // a poll (every 20 ms) of its own
	}
	time.Sleep(time.Second) // the poller reads the last one
	close(release)
	wait(func() bool { return len(slices.Concat(r.snapshot()...)) == 1+len(queued) })
	calls := r.snapshot()
	if len(calls) != 2 || !slices.Equal(calls[1], queued) {
		t.Errorf("got calls %v, want [[%s] %v]", calls, slow, queued)
	}
}
