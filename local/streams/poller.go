package streams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/streamer-dev/streamer/functions/streamfilter"
)

// Defaults of the deployed event source mapping (constructs/props.go).
const (
	// DefaultBatchSize is the most records per invocation.
	DefaultBatchSize = 10
	// DefaultRetryAttempts is how often a failing batch is retried before it
	// goes to the on-failure destination.
	DefaultRetryAttempts = 3
	// DefaultParallelizationFactor is how many batches of one shard run at
	// once.
	DefaultParallelizationFactor = 2
)

// Handler is a Lambda handler for DynamoDB stream events with
// ReportBatchItemFailures.
type Handler func(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error)

// API is the part of the DynamoDB Streams API the poller calls
// (*dynamodbstreams.Client).
type API interface {
	ListStreams(ctx context.Context, in *dynamodbstreams.ListStreamsInput, optFns ...func(*dynamodbstreams.Options)) (*dynamodbstreams.ListStreamsOutput, error)
	DescribeStream(ctx context.Context, in *dynamodbstreams.DescribeStreamInput, optFns ...func(*dynamodbstreams.Options)) (*dynamodbstreams.DescribeStreamOutput, error)
	GetShardIterator(ctx context.Context, in *dynamodbstreams.GetShardIteratorInput, optFns ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *dynamodbstreams.GetRecordsInput, optFns ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error)
}

// OnFailure receives the invocation record of a batch that exhausted its
// retries, as Lambda sends it to an SQS on-failure destination (JSON).
type OnFailure func(ctx context.Context, body string) error

// Poller plays Lambda's DynamoDB Streams event source mapping for one table:
// it reads every shard from TRIM_HORIZON, starts a child shard once its parent
// is finished, filters records with streamfilter.Match (records that do not
// match are dropped, as with a filter on the mapping), invokes the handler
// with batches of at most BatchSize records and a deadline, and honours
// BatchItemFailures: the batch is retried from the first failed record; a
// handler error retries the whole batch, split in halves (BisectBatchOnError).
// After RetryAttempts retries the batch's invocation record goes to OnFailure
// and the shard moves on. Up to ParallelizationFactor batches of one shard run
// at once; records with the same key always go to the same lane, in order.
type Poller struct {
	client    API
	table     string
	handler   Handler
	onFailure OnFailure
	logger    *slog.Logger
	// BatchSize is the most records per invocation. Default DefaultBatchSize.
	BatchSize int
	// RetryAttempts bounds the retries of a failing batch. Default
	// DefaultRetryAttempts.
	RetryAttempts int
	// Timeout is the invocation deadline set on the handler's context
	// (the processor's timeout). Default 15 minutes.
	Timeout time.Duration
	// Interval is the pause between polls of an idle shard; new shards are
	// looked for every ten intervals. Default 50 ms.
	Interval time.Duration
	// ParallelizationFactor is how many batches of one shard run at once.
	// Default DefaultParallelizationFactor.
	ParallelizationFactor int
}

// NewPoller returns a poller of table's stream that invokes handler.
func NewPoller(client API, table string, handler Handler, onFailure OnFailure, logger *slog.Logger) *Poller {
	return &Poller{client: client, table: table, handler: handler, onFailure: onFailure, logger: logger,
		BatchSize: DefaultBatchSize, RetryAttempts: DefaultRetryAttempts, Timeout: 15 * time.Minute, Interval: 50 * time.Millisecond,
		ParallelizationFactor: DefaultParallelizationFactor}
}

// Run polls until ctx ends; it returns nil then, or an error when the table
// has no stream.
func (p *Poller) Run(ctx context.Context) error {
	arn, err := p.streamARN(ctx)
	if err != nil {
		return err
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		started = map[string]bool{}
		done    = map[string]bool{}
	)
	defer wg.Wait()
	for {
		shards, err := p.shards(ctx, arn)
		if err != nil && ctx.Err() == nil {
			p.logger.WarnContext(ctx, "describe stream", "stream", arn, "error", err)
		}
		known := make(map[string]bool, len(shards))
		for _, s := range shards {
			known[aws.ToString(s.ShardId)] = true
		}
		mu.Lock()
		for _, s := range shards {
			id, parent := aws.ToString(s.ShardId), aws.ToString(s.ParentShardId)
			if started[id] || (parent != "" && known[parent] && !done[parent]) {
				continue
			}
			started[id] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.readShard(ctx, arn, id)
				mu.Lock()
				done[id] = true
				mu.Unlock()
			}()
		}
		mu.Unlock()
		if !sleep(ctx, 10*p.Interval) {
			return nil
		}
	}
}

// streamARN finds the table's latest stream.
func (p *Poller) streamARN(ctx context.Context) (string, error) {
	out, err := p.client.ListStreams(ctx, &dynamodbstreams.ListStreamsInput{TableName: aws.String(p.table)})
	if err != nil {
		return "", fmt.Errorf("list streams of %s: %w", p.table, err)
	}
	if len(out.Streams) == 0 {
		return "", fmt.Errorf("table %s has no stream", p.table)
	}
	return aws.ToString(out.Streams[len(out.Streams)-1].StreamArn), nil
}

// shards lists every shard of the stream, page by page.
func (p *Poller) shards(ctx context.Context, arn string) ([]types.Shard, error) {
	var all []types.Shard
	in := &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(arn)}
	for {
		out, err := p.client.DescribeStream(ctx, in)
		if err != nil {
			return all, err
		}
		all = append(all, out.StreamDescription.Shards...)
		if out.StreamDescription.LastEvaluatedShardId == nil {
			return all, nil
		}
		in.ExclusiveStartShardId = out.StreamDescription.LastEvaluatedShardId
	}
}

// readShard reads one shard until it is closed and drained, or ctx ends, and
// waits for its batches.
func (p *Poller) readShard(ctx context.Context, arn, shard string) {
	lanes := make([]chan []events.DynamoDBEventRecord, max(1, p.ParallelizationFactor))
	var wg sync.WaitGroup
	for i := range lanes {
		lanes[i] = make(chan []events.DynamoDBEventRecord, 64)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var next []events.DynamoDBEventRecord
			for {
				if len(next) == 0 {
					b, ok := <-lanes[i]
					if !ok {
						return
					}
					next = b
				}
				next = p.gather(next, lanes[i])
				n := min(len(next), p.BatchSize)
				p.invokeWithRetries(ctx, shard, next[:n])
				next = next[n:]
			}
		}()
	}
	defer func() {
		for _, l := range lanes {
			close(l)
		}
		wg.Wait()
	}()
	var after string // last sequence number handed over, to renew an expired iterator
	iter, err := p.iterator(ctx, arn, shard, after)
	for ctx.Err() == nil {
		if err != nil {
			p.logger.WarnContext(ctx, "stream shard", "shard", shard, "error", err)
			if !sleep(ctx, time.Second) {
				return
			}
			iter, err = p.iterator(ctx, arn, shard, after)
			continue
		}
		out, gerr := p.client.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(int32(p.BatchSize))})
		var expired *types.ExpiredIteratorException
		var trimmed *types.TrimmedDataAccessException
		switch {
		case errors.As(gerr, &expired):
			iter, err = p.iterator(ctx, arn, shard, after)
			continue
		case errors.As(gerr, &trimmed):
			// DynamoDB Local answers so for a TRIM_HORIZON iterator taken
			// while the shard was still empty: take a fresh one.
			if !sleep(ctx, p.Interval) {
				return
			}
			iter, err = p.iterator(ctx, arn, shard, after)
			continue
		case gerr != nil:
			err = fmt.Errorf("get records: %w", gerr)
			continue
		}
		if len(out.Records) > 0 {
			after = aws.ToString(out.Records[len(out.Records)-1].Dynamodb.SequenceNumber)
			p.deliver(ctx, arn, lanes, out.Records)
		}
		if out.NextShardIterator == nil {
			return // closed shard, fully read
		}
		iter = out.NextShardIterator
		if len(out.Records) == 0 && !sleep(ctx, p.Interval) {
			return
		}
	}
}

// iterator returns an iterator at the shard's start, or after seq.
func (p *Poller) iterator(ctx context.Context, arn, shard, seq string) (*string, error) {
	in := &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(arn), ShardId: aws.String(shard), ShardIteratorType: types.ShardIteratorTypeTrimHorizon}
	if seq != "" {
		in.ShardIteratorType, in.SequenceNumber = types.ShardIteratorTypeAfterSequenceNumber, aws.String(seq)
	}
	out, err := p.client.GetShardIterator(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("get shard iterator: %w", err)
	}
	return out.ShardIterator, nil
}

// deliver converts and filters records and hands them to their lanes, by
// key, as batches.
func (p *Poller) deliver(ctx context.Context, arn string, lanes []chan []events.DynamoDBEventRecord, recs []types.Record) {
	batches := make([][]events.DynamoDBEventRecord, len(lanes))
	for _, r := range recs {
		ev := ToEventRecord(r)
		ev.EventSourceArn = arn
		if streamfilter.Match(ev) {
			i := laneOf(r.Dynamodb.Keys, len(lanes))
			batches[i] = append(batches[i], ev)
		}
	}
	for i, b := range batches {
		if len(b) == 0 {
			continue
		}
		select {
		case lanes[i] <- b:
		case <-ctx.Done():
			return
		}
	}
}

// gather adds to next the records already waiting in lane, without waiting,
// until it holds BatchSize or more. As in Lambda, the records that arrived
// while a lane's batch ran make up its next batch, rather than one invocation
// per poll: a lane with a slow batch would otherwise run what queued behind
// it one small batch at a time.
func (p *Poller) gather(next []events.DynamoDBEventRecord, lane <-chan []events.DynamoDBEventRecord) []events.DynamoDBEventRecord {
	for len(next) < p.BatchSize {
		select {
		case b, ok := <-lane:
			if !ok {
				return next
			}
			next = append(next, b...)
		default:
			return next
		}
	}
	return next
}

// laneOf hashes a record's key to one of n lanes.
func laneOf(keys map[string]types.AttributeValue, n int) int {
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	slices.Sort(names)
	h := fnv.New32a()
	for _, k := range names {
		h.Write([]byte(k))
		switch v := keys[k].(type) {
		case *types.AttributeValueMemberS:
			h.Write([]byte(v.Value))
		case *types.AttributeValueMemberN:
			h.Write([]byte(v.Value))
		case *types.AttributeValueMemberB:
			h.Write(v.Value)
		}
	}
	return int(h.Sum32() % uint32(n))
}

// invokeWithRetries invokes the handler until the batch succeeds or its
// retries are exhausted.
func (p *Poller) invokeWithRetries(ctx context.Context, shard string, batch []events.DynamoDBEventRecord) {
	pending := [][]events.DynamoDBEventRecord{batch}
	for attempt := 0; len(pending) > 0 && ctx.Err() == nil; {
		cur := pending[0]
		rest, err := p.invoke(ctx, cur)
		switch {
		case err == nil && len(rest) == 0:
			pending, attempt = pending[1:], 0
			continue
		case attempt >= p.RetryAttempts:
			p.fail(ctx, shard, rest, attempt)
			pending, attempt = pending[1:], 0
			continue
		case err != nil && len(cur) > 1:
			// BisectBatchOnError: retry each half on its own.
			half := len(cur) / 2
			pending = append([][]events.DynamoDBEventRecord{cur[:half], cur[half:]}, pending[1:]...)
		default:
			pending[0] = rest
		}
		attempt++
		p.logger.InfoContext(ctx, "stream batch retry", "shard", shard, "attempt", attempt, "records", len(pending[0]), "error", err)
		if !sleep(ctx, time.Duration(attempt)*50*time.Millisecond) {
			return
		}
	}
}

// invoke calls the handler once and returns the records to redeliver: none on
// success, from the first failed record on with BatchItemFailures, all of them
// with an error.
func (p *Poller) invoke(ctx context.Context, batch []events.DynamoDBEventRecord) (rest []events.DynamoDBEventRecord, err error) {
	ictx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			rest, err = batch, fmt.Errorf("handler panic: %v", r)
		}
	}()
	resp, err := p.handler(ictx, events.DynamoDBEvent{Records: batch})
	if err != nil {
		return batch, err
	}
	first := len(batch)
	for _, f := range resp.BatchItemFailures {
		i := indexOf(batch, f.ItemIdentifier)
		if i < 0 {
			return batch, nil // an unknown or empty identifier fails the whole batch, as in Lambda
		}
		first = min(first, i)
	}
	return batch[first:], nil
}

func indexOf(batch []events.DynamoDBEventRecord, seq string) int {
	for i, r := range batch {
		if seq != "" && r.Change.SequenceNumber == seq {
			return i
		}
	}
	return -1
}

// failureRecord is the invocation record Lambda sends to a stream mapping's
// on-failure destination.
type failureRecord struct {
	RequestContext struct {
		Condition string `json:"condition"`
		Attempts  int    `json:"approximateInvokeCount"`
	} `json:"requestContext"`
	Timestamp string `json:"timestamp"`
	BatchInfo struct {
		ShardID       string    `json:"shardId"`
		StartSequence string    `json:"startSequenceNumber"`
		EndSequence   string    `json:"endSequenceNumber"`
		FirstArrival  time.Time `json:"approximateArrivalOfFirstRecord"`
		LastArrival   time.Time `json:"approximateArrivalOfLastRecord"`
		BatchSize     int       `json:"batchSize"`
		StreamArn     string    `json:"streamArn"`
	} `json:"DDBStreamBatchInfo"`
}

// fail sends the invocation record of a batch that exhausted its retries to
// the on-failure destination.
func (p *Poller) fail(ctx context.Context, shard string, batch []events.DynamoDBEventRecord, attempts int) {
	var rec failureRecord
	rec.RequestContext.Condition = "RetryAttemptsExhausted"
	rec.RequestContext.Attempts = attempts + 1
	rec.Timestamp = time.Now().UTC().Format(time.RFC3339Nano)
	first, last := batch[0], batch[len(batch)-1]
	rec.BatchInfo.ShardID = shard
	rec.BatchInfo.StartSequence, rec.BatchInfo.EndSequence = first.Change.SequenceNumber, last.Change.SequenceNumber
	rec.BatchInfo.FirstArrival, rec.BatchInfo.LastArrival = first.Change.ApproximateCreationDateTime.Time, last.Change.ApproximateCreationDateTime.Time
	rec.BatchInfo.BatchSize, rec.BatchInfo.StreamArn = len(batch), first.EventSourceArn
	body, _ := json.Marshal(rec) // plain struct: cannot fail
	p.logger.WarnContext(ctx, "stream batch exhausted its retries", "shard", shard, "records", len(batch))
	if p.onFailure == nil {
		return
	}
	if err := p.onFailure(ctx, string(body)); err != nil {
		p.logger.ErrorContext(ctx, "stream on-failure destination", "error", err)
	}
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
