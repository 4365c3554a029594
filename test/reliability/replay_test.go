package reliability

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	streamtypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/streamer-dev/streamer/functions/app"
	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/functions/processing"
	"github.com/streamer-dev/streamer/functions/protocol"
	"github.com/streamer-dev/streamer/functions/schema"
	"github.com/streamer-dev/streamer/functions/store"
	"github.com/streamer-dev/streamer/internal/ddblocal"
	"github.com/streamer-dev/streamer/internal/ddbtest"
	"github.com/streamer-dev/streamer/local"
	"github.com/streamer-dev/streamer/local/localtest"
	"github.com/streamer-dev/streamer/local/streams"
)

// streamRecords reads every record the stream of table holds, in stream
// order, converted as the local stream poller hands them to the processor.
func streamRecords(ctx context.Context, endpoint, table string) ([]events.DynamoDBEventRecord, error) {
	c := ddblocal.NewStreamsClient(endpoint)
	ls, err := c.ListStreams(ctx, &dynamodbstreams.ListStreamsInput{TableName: aws.String(table)})
	if err != nil {
		return nil, fmt.Errorf("stream of %s: %w", table, err)
	}
	if len(ls.Streams) == 0 {
		return nil, fmt.Errorf("table %s has no stream", table)
	}
	arn := ls.Streams[len(ls.Streams)-1].StreamArn
	var shards []streamtypes.Shard
	in := &dynamodbstreams.DescribeStreamInput{StreamArn: arn}
	for {
		out, err := c.DescribeStream(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("describe stream of %s: %w", table, err)
		}
		shards = append(shards, out.StreamDescription.Shards...)
		if in.ExclusiveStartShardId = out.StreamDescription.LastEvaluatedShardId; in.ExclusiveStartShardId == nil {
			break
		}
	}
	var recs []events.DynamoDBEventRecord
	for _, sh := range shards {
		it, err := c.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{StreamArn: arn, ShardId: sh.ShardId,
			ShardIteratorType: streamtypes.ShardIteratorTypeTrimHorizon})
		if err != nil {
			return nil, fmt.Errorf("iterate shard %s: %w", aws.ToString(sh.ShardId), err)
		}
		for iter := it.ShardIterator; iter != nil; {
			out, err := c.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(1000)})
			if err != nil {
				return nil, fmt.Errorf("read shard %s: %w", aws.ToString(sh.ShardId), err)
			}
			for _, r := range out.Records {
				rec := streams.ToEventRecord(r)
				rec.EventSourceArn = aws.ToString(arn)
				recs = append(recs, rec)
			}
			if len(out.Records) == 0 {
				break // an open shard read to its end
			}
			iter = out.NextShardIterator
		}
	}
	slices.SortStableFunc(recs, func(a, b events.DynamoDBEventRecord) int {
		x, y := a.Change.SequenceNumber, b.Change.SequenceNumber
		return cmp.Or(cmp.Compare(len(x), len(y)), cmp.Compare(x, y))
	})
	return recs, nil
}

// imageStatus is the request status in a stream image, "" when absent.
func imageStatus(img map[string]events.DynamoDBAttributeValue) store.Status {
	return store.Status(imageString(img, schema.AttrStatus))
}

// imageString returns the string attribute name of img, "" if absent.
func imageString(img map[string]events.DynamoDBAttributeValue, name string) string {
	if v, ok := img[name]; ok && v.DataType() == events.DataTypeString {
		return v.String()
	}
	return ""
}

// imageNumber returns the number attribute name of img, 0 if absent.
func imageNumber(img map[string]events.DynamoDBAttributeValue, name string) int64 {
	if v, ok := img[name]; ok && v.DataType() == events.DataTypeNumber {
		n, _ := v.Integer()
		return n
	}
	return 0
}

// history is what a requests table's stream says happened to some requests.
type history struct {
	// Records is how many stream records the requests have.
	Records int
	// Finals counts, per request key, the writes that made it final.
	Finals map[string]int
	// AfterFinal counts the writes (or deletes) of a request already final:
	// a status going backwards, or a final request changed.
	AfterFinal int
	// ClaimedCheckpoint is, per request key, the checkpoint stored when its
	// last run claimed it (the write that raised its attempt): what that run
	// must resume from.
	ClaimedCheckpoint map[string]string
}

// historyOf reads, from recs, the history of the requests whose keys are in keys.
func historyOf(recs []events.DynamoDBEventRecord, keys map[string]bool) history {
	h := history{Finals: map[string]int{}, ClaimedCheckpoint: map[string]string{}}
	for _, rec := range recs {
		key := rec.Change.Keys[schema.AttrRequestID]
		if key.DataType() != events.DataTypeString || !keys[key.String()] {
			continue
		}
		h.Records++
		before, after := imageStatus(rec.Change.OldImage), imageStatus(rec.Change.NewImage)
		if imageNumber(rec.Change.NewImage, "Attempt") > imageNumber(rec.Change.OldImage, "Attempt") {
			h.ClaimedCheckpoint[key.String()] = imageString(rec.Change.NewImage, "Checkpoint")
		}
		switch {
		case before.Final():
			h.AfterFinal++
		case after.Final():
			h.Finals[key.String()]++
		}
	}
	return h
}

// rawRequests reads the items of tenant's requests as stored, attribute by
// attribute, keyed by request key.
func rawRequests(ctx context.Context, db *dynamodb.Client, table, tenant string) (map[string]map[string]types.AttributeValue, error) {
	p := dynamodb.NewQueryPaginator(db, &dynamodb.QueryInput{
		TableName:                 aws.String(table),
		IndexName:                 aws.String(schema.IndexTenantRequests),
		KeyConditionExpression:    aws.String("#t = :t"),
		ExpressionAttributeNames:  map[string]string{"#t": schema.AttrTenantID},
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": &types.AttributeValueMemberS{Value: tenant}},
	})
	items := map[string]map[string]types.AttributeValue{}
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("read requests of %s: %w", tenant, err)
		}
		for _, it := range page.Items {
			if k, ok := it[schema.AttrRequestID].(*types.AttributeValueMemberS); ok {
				items[k.Value] = it
			}
		}
	}
	return items, nil
}

// replay is one delivery of recorded stream records, or of wake-ups, to a
// second processor.
type replay struct {
	name   string
	stream []events.DynamoDBEventRecord
	wakes  []string // request keys woken through the retry queue
}

// replays builds the deliveries of recs (the requests' stream records) and
// keys: every record twice in one batch, all shuffled, all reversed, and
// every request woken twice as a lease watchdog would.
func replays(recs []events.DynamoDBEventRecord, keys []string) []replay {
	shuffled := slices.Clone(recs)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	reversed := slices.Clone(recs)
	slices.Reverse(reversed)
	var doubled []events.DynamoDBEventRecord
	for _, r := range recs {
		doubled = append(doubled, r, r)
	}
	return []replay{
		{name: "duplicated", stream: doubled},
		{name: "shuffled", stream: shuffled},
		{name: "reversed", stream: reversed},
		{name: "wake-ups", wakes: append(slices.Clone(keys), keys...)},
	}
}

// deliver hands r to proc as Lambda would: stream records in batches of 100,
// wake-ups in batches of 10 (due now, reason lease). Any batch item failure
// is an error.
func (r replay) deliver(ctx context.Context, proc *processing.Handler) error {
	for b := range slices.Chunk(r.stream, 100) {
		resp, err := proc.HandleStream(ctx, events.DynamoDBEvent{Records: b})
		if err != nil || len(resp.BatchItemFailures) > 0 {
			return fmt.Errorf("%s replay: %d failures, %w", r.name, len(resp.BatchItemFailures), err)
		}
	}
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	for b := range slices.Chunk(r.wakes, 10) {
		ev := events.SQSEvent{}
		for i, key := range b {
			body, _ := json.Marshal(key)
			ev.Records = append(ev.Records, events.SQSMessage{MessageId: strconv.Itoa(i), EventSource: "aws:sqs",
				Body: `{"request_key":` + string(body) + `,"due_ms":` + now + `,"reason":"lease"}`})
		}
		resp, err := proc.HandleQueue(ctx, ev)
		if err != nil || len(resp.BatchItemFailures) > 0 {
			return fmt.Errorf("%s replay: %d failures, %w", r.name, len(resp.BatchItemFailures), err)
		}
	}
	return nil
}

// TestReplayedDeliveries proves that stream records and wake-ups delivered
// again, duplicated, shuffled or reversed, while the requests run and after
// they completed, never run a request a second time: the handler runs once
// per request, each request became COMPLETED by exactly one write, a
// completed item does not change by a byte, and the client gets one complete
// frame per request.
func TestReplayedDeliveries(t *testing.T) {
	t.Parallel()
	n := sized(20, 200)
	counter := &runCounter{}
	reg := counter.counted()
	rt := localtest.Start(t, local.Options{Registry: reg, Env: map[string]string{config.EnvRateLimit: "0"}})
	// The processor reads ctx's deadline as the invocation's: too close a one
	// makes it hand wake-ups back (too late to start), as it should in Lambda.
	ctx, cancel := context.WithTimeout(context.Background(), sized(5*time.Minute, 30*time.Minute))
	defer cancel()
	tenant := localtest.Tenant("replay")
	tr := track(t, rt, tenant, "u")
	proc, err := app.NewProcessor(ctx, ddblocal.AWSConfig(), rt.Environment(), reg, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o := outcome{Group: groupFaults, Scenario: "Duplicate and out-of-order stream deliveries",
		Size: fmt.Sprintf("%d requests × 5 replays", n)}
	defer func() { record(t, o) }()

	ids, keys, inTest := make([]string, n), make([]string, n), map[string]bool{}
	var acked []string
	for i := range ids {
		ids[i] = fmt.Sprintf("replay-%04d", i)
		keys[i] = store.RequestKey(tenant, ids[i])
		inTest[keys[i]] = true
		s, err := tr.submit(ctx, protocol.Message{Action: "delay", ID: ids[i], Payload: json.RawMessage(`{"seconds":1,"steps":2}`)}, 5)
		if err != nil || s.Answer.Type != protocol.TypeAcknowledgment {
			t.Fatalf("submit %s: %v %s", ids[i], err, s.Answer.Raw)
		}
		acked = append(acked, keys[i])
	}
	endpoint, table := ddbtest.Endpoint(t), rt.Tables().Requests
	read := func() []events.DynamoDBEventRecord {
		recs, err := streamRecords(ctx, endpoint, table)
		if err != nil {
			t.Fatal(err)
		}
		return slices.DeleteFunc(recs, func(r events.DynamoDBEventRecord) bool {
			return !inTest[r.Change.Keys[schema.AttrRequestID].String()]
		})
	}
	// While they run (or wait to): every record so far, twice.
	running := replays(read(), keys)[0]
	running.name = "while running"
	if err := running.deliver(ctx, proc); err != nil {
		t.Fatal(err)
	}
	streamed, woken := len(running.stream), 0
	if missing := tr.await(ctx, ids, protocol.TypeComplete); len(missing) > 0 {
		t.Fatalf("%d requests got no complete frame, e.g. %s", len(missing), missing[0])
	}
	reqs := settle(t, rt.DynamoDB(), table, []string{tenant}, time.Minute)
	before, err := rawRequests(ctx, rt.DynamoDB(), table, tenant)
	if err != nil {
		t.Fatal(err)
	}
	recs := read()
	for _, r := range replays(recs, keys) {
		if err := r.deliver(ctx, proc); err != nil {
			t.Fatal(err)
		}
		streamed, woken = streamed+len(r.stream), woken+len(r.wakes)
	}
	time.Sleep(time.Second) // frames a replay would have sent arrive
	after, err := rawRequests(ctx, rt.DynamoDB(), table, tenant)
	if err != nil {
		t.Fatal(err)
	}
	hist := historyOf(read(), inTest)

	tally(&o, acked, reqs)
	dup := map[string]bool{}
	for _, id := range ids {
		key := store.RequestKey(tenant, id)
		if frames := tr.count(id, protocol.TypeComplete); frames != 1 {
			t.Errorf("%s: got %d complete frames, want 1", id, frames)
			dup[key] = frames > 1
		}
		if hist.Finals[key] != 1 {
			t.Errorf("%s: made final by %d writes, want 1", id, hist.Finals[key])
			dup[key] = hist.Finals[key] > 1
		}
		if !reflect.DeepEqual(before[key], after[key]) {
			t.Errorf("%s: the completed item changed:\nbefore %v\nafter  %v", id, before[key], after[key])
			o.Errors++
		}
	}
	for _, d := range dup {
		if d {
			o.Duplicated++
		}
	}
	reruns := counter.duplicates()
	if reruns > 0 {
		t.Errorf("%d requests ran to completion more than once", reruns)
		o.Duplicated = max(o.Duplicated, reruns)
	}
	if hist.AfterFinal > 0 || hist.Records != len(recs) {
		t.Errorf("replays wrote: %d writes to final requests, %d stream records (want %d)", hist.AfterFinal, hist.Records, len(recs))
		o.Errors += hist.AfterFinal + hist.Records - len(recs)
	}
	if o.Completed != n {
		t.Errorf("got %d of %d requests completed: %+v", o.Completed, n, o)
	}
	o.Notes = fmt.Sprintf("%d stream records and %d wake-ups delivered again (duplicated while running; then duplicated, shuffled, reversed, woken twice); "+
		"%d requests ran twice, %d items changed, %d stream records written by the replays", streamed, woken, reruns, o.Errors, hist.Records-len(recs))
}
