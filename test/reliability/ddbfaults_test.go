package reliability

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"

	"github.com/streamer-dev/streamer/client"
	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/functions/protocol"
	"github.com/streamer-dev/streamer/functions/schema"
	"github.com/streamer-dev/streamer/functions/store"
	"github.com/streamer-dev/streamer/internal/ddblocal"
	"github.com/streamer-dev/streamer/internal/ddbtest"
	"github.com/streamer-dev/streamer/internal/faultproxy"
	"github.com/streamer-dev/streamer/local"
	"github.com/streamer-dev/streamer/local/localtest"
)

// ddbFaults is the fault mix of the scenario: 10% of DynamoDB calls fail
// (throttling, throughput exceeded, 500s; a quarter of the failures after
// the call was applied) and every call is slowed down.
var ddbFaults = faultproxy.Config{Rate: 0.10, AfterForward: 0.25, Latency: 2 * time.Millisecond, Jitter: 8 * time.Millisecond}

// awsMarkers add to leakMarkers what an AWS SDK error would put in a
// message, and no client may see.
var awsMarkers = []string{"internalservererror", "throughput", "throttl", "statuscode", "requestid", "operation error", "api error", "__type", "https://"}

// TestDynamoDBFaults proves that with the router and the processor going
// through a proxy that fails 10% of their DynamoDB calls (some of them after
// applying the write) and adds latency, every acknowledged request completes
// exactly once — one successful run, one COMPLETED item, one complete frame —
// and that a request that could not be stored is never acknowledged: the
// client gets a retryable error without AWS internals, DynamoDB holds
// nothing, and the same id goes through once DynamoDB recovers.
func TestDynamoDBFaults(t *testing.T) {
	t.Parallel()
	conns, perConn, unstoredN, goClientN := sized(4, 20), sized(20, 50), sized(5, 20), sized(10, 100)
	var counter runCounter
	rt, proxy, direct := proxiedRuntime(t, local.Options{Registry: counter.counted(),
		Env: map[string]string{config.EnvRateLimit: "1000", config.EnvTenantMaxInflight: "10000"}})
	tenant := localtest.Tenant("ddbfaults")
	// Every client connects before the faults start.
	trackers := make([]*tracker, conns)
	for i := range trackers {
		trackers[i] = track(t, rt, tenant, fmt.Sprintf("u%d", i))
	}
	goClient, err := client.Dial(context.Background(), rt.WSURL(), localtest.Token(t, rt, tenant, "go-client"), nil)
	if err != nil {
		t.Fatalf("dial the Go client: %v", err)
	}
	t.Cleanup(func() { _ = goClient.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), sized(3*time.Minute, 8*time.Minute))
	defer cancel()
	o := outcome{Group: groupFaults, Scenario: "DynamoDB faults",
		Size: fmt.Sprintf("%d connections × %d requests + %d through the Go client + %d during a write outage", conns, perConn, goClientN, unstoredN)}

	unstored, problems := writeOutage(ctx, t, trackers, proxy, direct, rt.Tables().Requests, tenant, unstoredN)
	outageStats := proxy.Stats()

	// 10% faults: each connection sends the outage's requests again with
	// their ids, then its share of the load.
	proxy.Set(ddbFaults)
	batches := map[*tracker][]protocol.Message{}
	for i, tr := range trackers {
		for j := i; j < len(unstored); j += conns {
			batches[tr] = append(batches[tr], unstored[j])
		}
		for j := range perConn {
			id := fmt.Sprintf("c%d-r%d", i, j)
			if j%5 == 4 {
				batches[tr] = append(batches[tr], protocol.Message{Action: "echo", ID: id, Payload: json.RawMessage(`{"n":` + fmt.Sprint(j) + `}`)})
			} else {
				batches[tr] = append(batches[tr], delayMessage(id))
			}
		}
	}
	var (
		load   *loadResult
		goLoad *clientResult
		both   sync.WaitGroup
	)
	both.Add(2)
	go func() { defer both.Done(); load = sendLoad(ctx, batches) }()
	go func() { defer both.Done(); goLoad = clientLoad(ctx, goClient, goClientN) }()
	both.Wait()
	keys, extraFrames := load.checkCompletes(ctx, tenant)
	for _, id := range goLoad.completed {
		keys = append(keys, store.RequestKey(tenant, id))
	}
	problems = append(append(problems, load.problems...), goLoad.problems...)
	stats := proxy.Stats().Since(outageStats)
	proxy.Set(faultproxy.Config{})

	reqs := settle(t, direct, rt.Tables().Requests, []string{tenant}, time.Minute)
	tally(&o, keys, reqs)
	for _, k := range keys {
		if r, ok := reqs[k]; ok && !r.Status.Final() {
			problems = append(problems, fmt.Sprintf("%s stuck %s after %d attempts (lease until %s)", k, r.Status, r.Attempt, time.UnixMilli(r.LeaseExpiresAt).Format(time.TimeOnly)))
		}
	}
	o.Duplicated = counter.duplicates() + extraFrames
	o.Errors = len(problems)
	ambiguous := 0 // writes applied but answered with a 500
	for _, op := range []string{"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"} {
		ambiguous += stats[op].Applied
	}
	o.Notes = fmt.Sprintf("fault rate %.0f%% of DynamoDB calls, %.0f%% of the faults after forwarding; latency %s + up to %s. Injected: %s, "+
		"of which %d ambiguous writes. %d sends for %d messages (%d for %d through the Go client); %d echo responses. "+
		"Write outage (every request write failing, %d calls): %d requests answered with a retryable error, none stored",
		ddbFaults.Rate*100, ddbFaults.AfterForward*100, ddbFaults.Latency, ddbFaults.Jitter, stats, ambiguous,
		load.sends, conns*perConn+len(unstored), goLoad.sends, goClientN, load.echoes, outageStats.Totals().Calls, len(unstored))
	record(t, o)

	for _, p := range problems {
		t.Error(p)
	}
	if o.Completed != o.Acknowledged || o.Duplicated != 0 {
		t.Errorf("%d acknowledged: %d completed, %d failed, %d cancelled, %d lost, %d stuck, %d duplicated; want all completed once",
			o.Acknowledged, o.Completed, o.Failed, o.Cancelled, o.Lost, o.Stuck, o.Duplicated)
	}
	if stats.Totals().Faults[faultproxy.Throttling] == 0 || ambiguous == 0 {
		t.Errorf("the proxy injected too little to prove anything: %s", stats)
	}
	t.Log(o.Notes)
}

// writeOutage fails every write that would store a request while the
// trackers send n async requests, once each. It reports, as problems, any
// answer other than a retryable error, any AWS internals in it, and any of
// the requests found stored afterwards (read straight from DynamoDB). It
// returns the requests, for sending again.
func writeOutage(ctx context.Context, t *testing.T, trackers []*tracker, proxy *faultproxy.Proxy, direct *dynamodb.Client, table, tenant string, n int) ([]protocol.Message, []string) {
	t.Helper()
	proxy.Set(faultproxy.Config{Rate: 1, Operations: []string{"TransactWriteItems", "PutItem"}})
	msgs := make([]protocol.Message, n)
	answers := make([]submission, n)
	var g errgroup.Group
	for i := range msgs {
		msgs[i] = delayMessage(fmt.Sprintf("outage-%d", i))
		g.Go(func() (err error) {
			answers[i], err = trackers[i%len(trackers)].submit(ctx, msgs[i], 1)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	var problems []string
	for i, s := range answers {
		if !retryable(s.Answer) {
			problems = append(problems, fmt.Sprintf("%s during the outage: answered %s, want a retryable error", msgs[i].ID, s.Answer.Raw))
		}
		if p := frameLeaks(s.Answer); p != "" {
			problems = append(problems, p)
		}
		if stored(t, direct, table, tenant, msgs[i].ID) {
			problems = append(problems, fmt.Sprintf("%s was stored although the client got an error", msgs[i].ID))
		}
	}
	return msgs, problems
}

// loadResult is what the clients saw of a load.
type loadResult struct {
	mu sync.Mutex
	// acked are the acknowledged async requests' ids, by connection (an
	// answer with a complete frame counts); ackedByDone those a resend found
	// finished.
	acked       map[*tracker][]string
	ackedByDone map[string]bool
	// sends counts messages sent, resends included; echoes the sync answers.
	sends, echoes int
	problems      []string
}

// sendLoad has every tracker send its batch, one message after another,
// each resent with its id on retryable errors (10 sends at most).
func sendLoad(ctx context.Context, batches map[*tracker][]protocol.Message) *loadResult {
	l := &loadResult{acked: map[*tracker][]string{}, ackedByDone: map[string]bool{}}
	var wg sync.WaitGroup
	for tr, msgs := range batches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, m := range msgs {
				s, err := tr.submit(ctx, m, 10)
				l.note(tr, m, s, err)
			}
		}()
	}
	wg.Wait()
	return l
}

// note files how message m sent by tr ended.
func (l *loadResult) note(tr *tracker, m protocol.Message, s submission, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	problem := func(format string, args ...any) { l.problems = append(l.problems, fmt.Sprintf(format, args...)) }
	l.sends += s.Sends
	for _, f := range append(s.Errors, s.Answer) {
		if p := frameLeaks(f); p != "" {
			problem("%s", p)
		}
	}
	switch {
	case err != nil:
		problem("%s: %v", m.ID, err)
	case m.Action == "echo" && s.Answer.Type == protocol.TypeResponse && success(s.Answer):
		l.echoes++
	case m.Action == "echo":
		problem("echo %s answered %s", m.ID, s.Answer.Raw)
	case s.Answer.Type == protocol.TypeAcknowledgment:
		l.acked[tr] = append(l.acked[tr], m.ID)
	case s.Answer.Type == protocol.TypeComplete:
		// Finished before its acknowledgment arrived (an ambiguous write held
		// the router in the SDK's retries), or found finished by a resend.
		l.acked[tr] = append(l.acked[tr], m.ID)
		l.ackedByDone[m.ID] = s.Sends > 1
	default:
		problem("%s not acknowledged after %d sends: %s", m.ID, s.Sends, s.Answer.Raw)
	}
}

// checkCompletes waits for a complete frame of every acknowledged request and
// checks each got exactly one, successful (two when a resend found it
// finished: its answer and the broadcast). It returns the requests' keys and
// the number that got too many.
func (l *loadResult) checkCompletes(ctx context.Context, tenant string) (keys []string, extra int) {
	for tr, ids := range l.acked {
		for _, id := range tr.await(ctx, ids, protocol.TypeComplete) {
			l.problems = append(l.problems, fmt.Sprintf("%s: no complete frame", id))
		}
		for _, id := range ids {
			keys = append(keys, store.RequestKey(tenant, id))
			want := 1
			if l.ackedByDone[id] {
				want = 2
			}
			if n := tr.count(id, protocol.TypeComplete); n > want {
				extra++
				l.problems = append(l.problems, fmt.Sprintf("%s: %d complete frames", id, n))
			}
			for _, f := range tr.framesOf(id) {
				if f.Type == protocol.TypeComplete && !success(f) {
					l.problems = append(l.problems, fmt.Sprintf("%s: failed: %s", id, f.Raw))
				}
			}
		}
	}
	return keys, extra
}

// clientResult is what the Go client saw of its share of a load.
type clientResult struct {
	// completed are the ids whose Request returned their result.
	completed []string
	// sends counts Request calls, resends included.
	sends    int
	problems []string
}

// clientLoad sends n delay requests through a Go client (package client),
// ten at a time, each sent again with its id while the answer is a
// retryable error (10 sends at most).
func clientLoad(ctx context.Context, c *client.Client, n int) *clientResult {
	var (
		mu  sync.Mutex
		res = &clientResult{}
		g   errgroup.Group
	)
	g.SetLimit(10)
	for i := range n {
		id := fmt.Sprintf("go-%d", i)
		g.Go(func() error {
			for sends := 1; ; sends++ {
				_, err := c.Request(ctx, "delay", delayMessage(id).Payload, nil, client.WithID(id))
				var se *client.Error
				retry := errors.As(err, &se) && (se.Code == protocol.CodeInternal || se.Code == protocol.CodeRateLimited) && sends < 10
				mu.Lock()
				res.sends++
				switch {
				case err == nil:
					res.completed = append(res.completed, id)
				case se != nil:
					if p := leaks(se.Message, se.Error()); p != "" {
						res.problems = append(res.problems, p)
					}
					if !retry {
						res.problems = append(res.problems, fmt.Sprintf("Go client %s: %v after %d sends", id, err, sends))
					}
				default:
					res.problems = append(res.problems, fmt.Sprintf("Go client %s: %v", id, err))
				}
				mu.Unlock()
				if !retry {
					return nil
				}
			}
		})
	}
	_ = g.Wait() // problems are collected in res
	return res
}

// proxiedRuntime starts a runtime whose DynamoDB calls — router, processor
// and stream poller — go through a fault proxy, injecting nothing until Set.
// direct reads DynamoDB Local without the proxy.
func proxiedRuntime(t *testing.T, opts local.Options) (rt *local.Runtime, proxy *faultproxy.Proxy, direct *dynamodb.Client) {
	t.Helper()
	proxy, err := faultproxy.Start(ddbtest.Endpoint(t), faultproxy.Config{}, 6)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	opts.DynamoDBEndpoint = proxy.URL
	return localtest.Start(t, opts), proxy, ddblocal.NewClient(ddbtest.Endpoint(t))
}

// delayMessage is a short async request with progress: two steps of 0.1 s.
func delayMessage(id string) protocol.Message {
	return protocol.Message{Action: "delay", ID: id, Payload: json.RawMessage(`{"seconds":0.2,"steps":2}`)}
}

// leaks describes an error message that shows internals (leakMarkers,
// awsMarkers), naming what carried it, or returns "".
func leaks(message, carrier string) string {
	lower := strings.ToLower(message)
	for _, m := range slices.Concat(leakMarkers, awsMarkers) {
		if strings.Contains(lower, m) {
			return fmt.Sprintf("error message shows internals (%q): %s", m, carrier)
		}
	}
	return ""
}

// frameLeaks is leaks of an error frame.
func frameLeaks(f wireFrame) string {
	if f.Error == nil {
		return ""
	}
	return leaks(f.Error.Message, f.Raw)
}

// stored reports whether tenant's request id is in the requests table, read
// straight from DynamoDB.
func stored(t *testing.T, db *dynamodb.Client, table, tenant, id string) bool {
	t.Helper()
	out, err := db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{schema.AttrRequestID: &types.AttributeValueMemberS{Value: store.RequestKey(tenant, id)}}})
	if err != nil {
		t.Fatalf("read %s: %v", id, err)
	}
	return len(out.Item) > 0
}
