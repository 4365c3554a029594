package faultproxy_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/smithy-go"

	"github.com/streamer-dev/streamer/functions/schema"
	"github.com/streamer-dev/streamer/internal/ddblocal"
	"github.com/streamer-dev/streamer/internal/ddbtest"
	"github.com/streamer-dev/streamer/internal/faultproxy"
)

// env is a proxy in front of DynamoDB Local with fresh tables, a client
// through it that never retries, and a direct client.
type env struct {
	proxy   *faultproxy.Proxy
	through *dynamodb.Client
	direct  *dynamodb.Client
	table   string
}

// start serves a proxy injecting cfg, seeded with seed, in front of fresh tables.
func start(t *testing.T, cfg faultproxy.Config, seed uint64) env {
	t.Helper()
	db := ddbtest.Tables(t)
	p, err := faultproxy.Start(db.Endpoint, cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	through := dynamodb.NewFromConfig(ddblocal.AWSConfig(), func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(p.URL)
		o.RetryMaxAttempts = 1
	})
	return env{proxy: p, through: through, direct: db.Client, table: db.Tables.Requests}
}

// ctx bounds one call of a test.
func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// key is the requests table key of id.
func key(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{schema.AttrRequestID: &types.AttributeValueMemberS{Value: id}}
}

// put writes an item with key id through c.
func (e env) put(t *testing.T, c *dynamodb.Client, id string) error {
	t.Helper()
	_, err := c.PutItem(ctx(t), &dynamodb.PutItemInput{TableName: aws.String(e.table), Item: key(id)})
	return err
}

// exists reads id directly from DynamoDB Local.
func (e env) exists(t *testing.T, id string) bool {
	t.Helper()
	out, err := e.direct.GetItem(ctx(t), &dynamodb.GetItemInput{TableName: aws.String(e.table), Key: key(id), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Item) > 0
}

// TestFaultKinds proves each injected fault reaches the SDK as the modeled
// DynamoDB error, classified as the SDK classifies the real one (throttle or
// retryable), and that nothing was written.
func TestFaultKinds(t *testing.T) {
	t.Parallel()
	cases := []struct {
		kind     faultproxy.Kind
		as       any
		throttle bool
	}{
		{faultproxy.Throttling, new(*types.ThrottlingException), true},
		{faultproxy.ThroughputExceeded, new(*types.ProvisionedThroughputExceededException), true},
		{faultproxy.InternalError, new(*types.InternalServerError), false},
	}
	for _, c := range cases {
		t.Run(string(c.kind), func(t *testing.T) {
			t.Parallel()
			e := start(t, faultproxy.Config{Rate: 1, Kinds: []faultproxy.Kind{c.kind}}, 1)
			err := e.put(t, e.through, "k")
			if !errors.As(err, c.as) {
				t.Fatalf("PutItem error %v, want a %s", err, c.kind)
			}
			var api smithy.APIError
			if !errors.As(err, &api) || api.ErrorCode() != string(c.kind) {
				t.Errorf("error code of %v, want %s", err, c.kind)
			}
			if got := retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err); got != aws.TrueTernary {
				t.Errorf("retryable: %v, want true", got)
			}
			if got := (retry.ThrottleErrorCode{Codes: retry.DefaultThrottleErrorCodes}).IsErrorThrottle(err); (got == aws.TrueTernary) != c.throttle {
				t.Errorf("throttle: %v, want %v", got, c.throttle)
			}
			if e.exists(t, "k") {
				t.Error("the failed put was written")
			}
			if got := e.proxy.Stats()["PutItem"]; got.Calls != 1 || got.Faults[c.kind] != 1 {
				t.Errorf("stats %+v, want one call, one %s", got, c.kind)
			}
		})
	}
}

// TestAfterForward proves an after-forward fault is an ambiguous write: the
// client gets a 500, the item is in DynamoDB, and the stats say so.
func TestAfterForward(t *testing.T) {
	t.Parallel()
	e := start(t, faultproxy.Config{Rate: 1, AfterForward: 1, Kinds: []faultproxy.Kind{faultproxy.Throttling}}, 1)
	var ise *types.InternalServerError
	if err := e.put(t, e.through, "k"); !errors.As(err, &ise) {
		t.Fatalf("PutItem error %v, want InternalServerError", err)
	}
	if !e.exists(t, "k") {
		t.Error("the put was not forwarded")
	}
	got := e.proxy.Stats()["PutItem"]
	if got.AfterForward != 1 || got.Applied != 1 || got.Faults[faultproxy.InternalError] != 1 {
		t.Errorf("stats %+v, want one applied after-forward InternalServerError", got)
	}
}

// TestAmbiguousTransactionIsIdempotent proves that an SDK client with its
// default retries rides out an applied-then-500 transaction: the retry
// carries the same ClientRequestToken, so DynamoDB (Local too) answers it as
// done instead of failing the item's condition.
func TestAmbiguousTransactionIsIdempotent(t *testing.T) {
	t.Parallel()
	// Only the first attempt fails: the proxy forwards every later one.
	e := start(t, faultproxy.Config{Rate: 1, AfterForward: 1, MaxFaults: 1, Operations: []string{"TransactWriteItems"}}, 1)
	retrying := dynamodb.NewFromConfig(ddblocal.AWSConfig(), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(e.proxy.URL) })
	_, err := retrying.TransactWriteItems(ctx(t), &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: aws.String(e.table), Item: key("tx"), ConditionExpression: aws.String("attribute_not_exists(" + schema.AttrRequestID + ")")}},
	}})
	if err != nil {
		t.Fatalf("transaction retried after an ambiguous 500: %v", err)
	}
	if !e.exists(t, "tx") {
		t.Error("the transaction's item is missing")
	}
	if got := e.proxy.Stats()["TransactWriteItems"]; got.Calls != 2 || got.Applied != 1 {
		t.Errorf("stats %+v, want two calls, the first applied", got)
	}
}

// TestScope proves the proxy leaves alone what it is not asked to touch:
// operations outside Operations, and DynamoDB Streams calls (outside the
// default scope), even at a 100% fault rate; and that a scope set to DynamoDB
// Streams turns that around.
func TestScope(t *testing.T) {
	t.Parallel()
	e := start(t, faultproxy.Config{Rate: 1, Operations: []string{"PutItem"}}, 1)
	if err := e.put(t, e.direct, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.through.GetItem(ctx(t), &dynamodb.GetItemInput{TableName: aws.String(e.table), Key: key("k")}); err != nil {
		t.Errorf("GetItem outside Operations failed: %v", err)
	}
	before := e.proxy.Stats()
	if err := e.put(t, e.through, "k2"); err == nil {
		t.Error("PutItem in Operations passed at rate 1")
	}
	e.proxy.Set(faultproxy.Config{Rate: 1})
	streams := dynamodbstreams.NewFromConfig(ddblocal.AWSConfig(), func(o *dynamodbstreams.Options) {
		o.BaseEndpoint = aws.String(e.proxy.URL)
		o.RetryMaxAttempts = 1
	})
	listStreams := func() error {
		_, err := streams.ListStreams(ctx(t), &dynamodbstreams.ListStreamsInput{TableName: aws.String(e.table)})
		return err
	}
	if err := listStreams(); err != nil {
		t.Errorf("ListStreams through the proxy: %v", err)
	}
	st := e.proxy.Stats()
	if d := st.Since(before); d["GetItem"].Calls != 0 || d["PutItem"].Calls != 1 || d.Totals().Faults[faultproxy.Throttling]+d.Totals().Faults[faultproxy.ThroughputExceeded]+d.Totals().Faults[faultproxy.InternalError] != 1 {
		t.Errorf("since the GetItem: %v, want one PutItem call, one fault", d)
	}
	if st["GetItem"].Calls != 1 || len(st["GetItem"].Faults) != 0 || st["PutItem"].Faults[faultproxy.Throttling]+st["PutItem"].Faults[faultproxy.ThroughputExceeded]+st["PutItem"].Faults[faultproxy.InternalError] != 1 {
		t.Errorf("stats %v", st)
	}
	if _, ok := st["ListStreams"]; ok {
		t.Errorf("streams call counted: %v", st)
	}
	// Scoped to DynamoDB Streams, it fails their calls and leaves DynamoDB's.
	e.proxy.Set(faultproxy.Config{Rate: 1, Scope: "DynamoDBStreams_20120810."})
	if err := listStreams(); err == nil {
		t.Error("ListStreams passed at rate 1 in the streams scope")
	}
	if err := e.put(t, e.through, "k3"); err != nil {
		t.Errorf("PutItem outside the streams scope: %v", err)
	}
}

// TestSeededRate proves a seed fixes the faults of a sequential run, and the
// share of faults follows Rate.
func TestSeededRate(t *testing.T) {
	t.Parallel()
	const calls = 200
	run := func(seed uint64) string {
		e := start(t, faultproxy.Config{Rate: 0.3}, seed)
		pattern := make([]byte, calls)
		for i := range pattern {
			pattern[i] = '.'
			if e.put(t, e.through, fmt.Sprint(i)) != nil {
				pattern[i] = 'x'
			}
		}
		if got := e.proxy.Stats().Totals(); got.Calls != calls {
			t.Errorf("counted %d calls, want %d", got.Calls, calls)
		}
		return string(pattern)
	}
	a, b := run(7), run(7)
	if a != b {
		t.Errorf("same seed, different faults:\n%s\n%s", a, b)
	}
	if n := strings.Count(a, "x"); n < calls/10 || n > calls/2 {
		t.Errorf("%d of %d calls failed at rate 0.3", n, calls)
	}
}

// TestLatency proves in-scope calls are held at least Latency.
func TestLatency(t *testing.T) {
	t.Parallel()
	e := start(t, faultproxy.Config{Latency: 100 * time.Millisecond, Jitter: 50 * time.Millisecond}, 1)
	begin := time.Now()
	if err := e.put(t, e.through, "k"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d < 100*time.Millisecond {
		t.Errorf("call took %s, less than the added latency", d)
	}
}
