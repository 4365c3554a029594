package processing

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	stypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/streamer-dev/streamer/functions/actions"
	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/functions/connections"
	"github.com/streamer-dev/streamer/functions/metrics"
	"github.com/streamer-dev/streamer/functions/notify"
	"github.com/streamer-dev/streamer/functions/protocol"
	"github.com/streamer-dev/streamer/functions/store"
	"github.com/streamer-dev/streamer/internal/ddblocal"
	"github.com/streamer-dev/streamer/internal/ddbtest"
	"github.com/streamer-dev/streamer/local/sqslocal"
	"github.com/streamer-dev/streamer/local/streams"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// poster stands in for API Gateway's @connections API: it records the frames
// each connection receives and answers 410 Gone for the connections in gone.
type poster struct {
	mu     sync.Mutex
	frames map[string][]map[string]any
	gone   map[string]bool
}

func newPoster(gone ...string) *poster {
	p := &poster{frames: map[string][]map[string]any{}, gone: map[string]bool{}}
	for _, g := range gone {
		p.gone[g] = true
	}
	return p
}

func (p *poster) Post(_ context.Context, id string, data []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gone[id] {
		return fmt.Errorf("post: %w", connections.ErrGone)
	}
	var f map[string]any
	if err := json.Unmarshal(data, &f); err != nil {
		return err
	}
	p.frames[id] = append(p.frames[id], f)
	return nil
}

// ofType returns the frames of type typ that connection id received.
func (p *poster) ofType(id, typ string) []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []map[string]any
	for _, f := range p.frames[id] {
		if f["type"] == typ {
			out = append(out, f)
		}
	}
	return out
}

// env is one test's processor world: fresh tables on DynamoDB Local, a retry
// queue and a dead-letter queue on sqslocal, and a recording @connections.
type env struct {
	t       testing.TB
	ddb     ddbtest.Env
	store   *store.Store
	sqs     *sqs.Client
	retry   string
	dlq     string
	poster  *poster
	reg     *actions.Registry
	streams *dynamodbstreams.Client
	iters   map[string]*string // shard id → next iterator
}

func newEnv(t testing.TB, gone ...string) *env {
	t.Helper()
	d := ddbtest.Tables(t)
	srv := httptest.NewServer(sqslocal.New())
	t.Cleanup(srv.Close)
	client := sqslocal.NewClient(srv.URL)
	ctx := context.Background()
	mk := func(name string) string {
		out, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
		if err != nil {
			t.Fatalf("create queue: %v", err)
		}
		return aws.ToString(out.QueueUrl)
	}
	return &env{t: t, ddb: d, sqs: client, retry: mk("retry"), dlq: mk("dlq"), poster: newPoster(gone...), reg: actions.NewRegistry(),
		store:   store.New(d.Client, config.Tables{Connections: d.Tables.Connections, Requests: d.Tables.Requests, Subscriptions: d.Tables.Subscriptions}),
		streams: ddblocal.NewStreamsClient(d.Endpoint), iters: map[string]*string{}}
}

// handler returns a processor over the env; cfg's queue URLs are filled in.
func (e *env) handler(cfg Config) *Handler {
	cfg.RetryQueueURL, cfg.DeadLetterQueueURL = e.retry, e.dlq
	if cfg.CancelPoll == 0 {
		cfg.CancelPoll = 50 * time.Millisecond
	}
	return New(e.reg, e.store, notify.New(e.poster, e.store, discard), e.sqs, metrics.Discard(), cfg, discard)
}

// submit stores a request as the router does: PENDING, counted against the
// tenant, followed by the submitting connection. It returns the request.
func (e *env) submit(id, action string, opts ...func(*store.Request)) store.Request {
	e.t.Helper()
	now := time.Now()
	r := store.Request{RequestID: store.RequestKey("t1", id), ID: id, TenantID: "t1", UserID: "u1", ConnectionID: "c1",
		Status: store.StatusPending, CreatedAt: now.UnixMilli(), Action: action, Payload: `{"n":1}`, ProcessAfter: now.UnixMilli(),
		TTL: now.Add(time.Hour).Unix()}
	for _, o := range opts {
		o(&r)
	}
	if err := e.store.PutConnection(context.Background(), store.Connection{ConnectionID: r.ConnectionID, TenantID: "t1", UserID: "u1",
		Endpoint: "http://local", ConnectedAt: now.UnixMilli(), LastPing: now.UnixMilli(), TTL: now.Add(time.Hour).Unix()}, 0); err != nil {
		e.t.Fatalf("PutConnection: %v", err)
	}
	if _, _, err := e.store.CreateRequest(context.Background(), r, 0); err != nil {
		e.t.Fatalf("CreateRequest: %v", err)
	}
	return r
}

func (e *env) subscribe(connID string, r store.Request) {
	e.t.Helper()
	now := time.Now()
	ctx := context.Background()
	if err := e.store.PutConnection(ctx, store.Connection{ConnectionID: connID, TenantID: "t1", UserID: "u1", Endpoint: "http://local",
		ConnectedAt: now.UnixMilli(), LastPing: now.UnixMilli(), TTL: now.Add(time.Hour).Unix()}, 0); err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.PutSubscription(ctx, store.Subscription{ConnectionID: connID, RequestID: r.RequestID, TenantID: "t1", CreatedAt: now.UnixMilli(), TTL: r.TTL}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) get(r store.Request) store.Request {
	e.t.Helper()
	got, err := e.store.RequestByKey(context.Background(), r.RequestID)
	if err != nil {
		e.t.Fatalf("RequestByKey: %v", err)
	}
	return got
}

func (e *env) inflight() int {
	e.t.Helper()
	_, n, err := e.store.TenantCounters(context.Background(), "t1")
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// records reads the requests table's stream records written since the last
// call, as the Lambda event source mapping would deliver them.
func (e *env) records() []events.DynamoDBEventRecord {
	e.t.Helper()
	ctx := context.Background()
	desc, err := e.ddb.Client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(e.ddb.Tables.Requests)})
	if err != nil {
		e.t.Fatal(err)
	}
	arn := desc.Table.LatestStreamArn
	stream, err := e.streams.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: arn})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []events.DynamoDBEventRecord
	for _, sh := range stream.StreamDescription.Shards {
		id := aws.ToString(sh.ShardId)
		it, ok := e.iters[id]
		if !ok {
			gi, err := e.streams.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{StreamArn: arn, ShardId: sh.ShardId, ShardIteratorType: stypes.ShardIteratorTypeTrimHorizon})
			if err != nil {
				e.t.Fatal(err)
			}
			it = gi.ShardIterator
		}
		for it != nil {
			page, err := e.streams.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: it})
			if err != nil {
				e.t.Fatal(err)
			}
			for _, rec := range page.Records {
				out = append(out, eventRecord(rec, aws.ToString(arn)))
			}
			e.iters[id] = page.NextShardIterator
			if len(page.Records) == 0 {
				break
			}
			it = page.NextShardIterator
		}
	}
	return out
}

// inserts returns the INSERT records among recs.
func inserts(recs []events.DynamoDBEventRecord) []events.DynamoDBEventRecord {
	var out []events.DynamoDBEventRecord
	for _, r := range recs {
		if r.EventName == "INSERT" {
			out = append(out, r)
		}
	}
	return out
}

// eventRecord converts a real stream record as the local runtime's poller
// does, with the stream ARN the event source mapping adds.
func eventRecord(rec stypes.Record, arn string) events.DynamoDBEventRecord {
	out := streams.ToEventRecord(rec)
	out.EventSourceArn = arn
	return out
}

// drain receives up to 10 messages from url (waiting up to wait seconds) and
// returns their bodies decoded.
func (e *env) drain(url string, wait int32) []map[string]any {
	e.t.Helper()
	out, err := e.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: wait})
	if err != nil {
		e.t.Fatal(err)
	}
	var msgs []map[string]any
	for _, m := range out.Messages {
		var body map[string]any
		if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &body); err != nil {
			e.t.Fatal(err)
		}
		msgs = append(msgs, body)
	}
	return msgs
}

// queueCount returns the messages on url, visible, in flight and delayed.
func (e *env) queueCount(url string) int {
	e.t.Helper()
	out, err := e.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, a := range []string{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"} {
		v, _ := strconv.Atoi(out.Attributes[a])
		n += v
	}
	return n
}

// pollUntil runs the retry queue through h, like Lambda's SQS mapping, until
// done reports true or the attempts run out.
func (e *env) pollUntil(h *Handler, done func() bool) {
	e.t.Helper()
	p := sqslocal.NewPoller(e.sqs, e.retry, h.HandleQueue, discard)
	p.Wait = time.Second
	for range 30 {
		if done() {
			return
		}
		if _, err := p.PollOnce(context.Background()); err != nil {
			e.t.Fatal(err)
		}
	}
	if !done() {
		e.t.Fatal("condition not reached after 30 polls of the retry queue")
	}
}

// completes returns the complete frames connection id received.
func (e *env) completes(id string) []map[string]any {
	return e.poster.ofType(id, protocol.TypeComplete)
}

func deleteInput(e *env, key string) *dynamodb.DeleteItemInput {
	return &dynamodb.DeleteItemInput{TableName: aws.String(e.ddb.Tables.Requests),
		Key: map[string]ddbtypes.AttributeValue{"RequestID": &ddbtypes.AttributeValueMemberS{Value: key}}}
}
