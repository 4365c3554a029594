package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/functions/protocol"
	"github.com/streamer-dev/streamer/functions/schema"
	"github.com/streamer-dev/streamer/functions/store"
	"github.com/streamer-dev/streamer/local"
	"github.com/streamer-dev/streamer/local/localtest"
)

// connFaults is an HTTP fault handler in front of the @connections API. It
// answers 410 Gone for the connections marked gone (without forwarding: the
// WebSocket stays open, as when API Gateway has dropped a connection the
// client has not noticed), 429 to the first post of one message in every
// throttleEvery (a message is a connection and a body; its retry passes, as
// the throttling clears), and forwards the rest after a random latency,
// counting per connection the posts the API accepted.
type connFaults struct {
	throttleEvery   int
	latency, jitter time.Duration

	mu     sync.Mutex
	target *httputil.ReverseProxy // nil until set: 503
	gone   map[string]bool
	seen   map[uint64]bool // the throttled messages
	// accepted counts, per connection, the posts the API answered 2xx.
	accepted map[string]int
	// Counters of the calls answered.
	calls, goneAnswers, throttled int
}

// setTarget forwards calls to the server at addr (host:port).
func (f *connFaults) setTarget(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.target = httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: addr})
}

// markGone makes the connections answer 410 from now on.
func (f *connFaults) markGone(ids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone == nil {
		f.gone = map[string]bool{}
	}
	for _, id := range ids {
		f.gone[id] = true
	}
}

// ServeHTTP answers one @connections call, or a fault.
func (f *connFaults) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, rawID, _ := strings.Cut(r.URL.EscapedPath(), "/@connections/")
	id, _ := url.PathUnescape(rawID)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	h := fnv.New64a()
	h.Write([]byte(id))
	h.Write(body)
	msg := h.Sum64()

	f.mu.Lock()
	f.calls++
	target, gone := f.target, f.gone[id]
	throttle := r.Method == http.MethodPost && f.throttleEvery > 0 && msg%uint64(f.throttleEvery) == 0 && !f.seen[msg]
	switch {
	case gone:
		f.goneAnswers++
	case throttle:
		if f.seen == nil {
			f.seen = map[uint64]bool{}
		}
		f.seen[msg] = true
		f.throttled++
	}
	f.mu.Unlock()
	switch {
	case target == nil:
		http.Error(w, "no target yet", http.StatusServiceUnavailable)
	case gone:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusGone)
		_, _ = io.WriteString(w, `{"message":"GoneException"}`)
	case throttle:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"message":"Too Many Requests"}`)
	default:
		time.Sleep(f.latency + rand.N(f.jitter+1))
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		target.ServeHTTP(sw, r)
		if r.Method == http.MethodPost && sw.status < 300 {
			f.mu.Lock()
			if f.accepted == nil {
				f.accepted = map[string]int{}
			}
			f.accepted[id]++
			f.mu.Unlock()
		}
	}
}

// acceptedBy is how many posts to the connection the API accepted.
func (f *connFaults) acceptedBy(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.accepted[id]
}

// statusWriter keeps the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

// WriteHeader records the status and sends it.
func (s *statusWriter) WriteHeader(status int) {
	s.status = status
	s.ResponseWriter.WriteHeader(status)
}

// counts returns the counters: calls, 410 answers, 429 answers.
func (f *connFaults) counts() (calls, gone, throttled int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, f.goneAnswers, f.throttled
}

// connectionOf finds the id of user's one connection in the
// user-connections index.
func connectionOf(ctx context.Context, db *dynamodb.Client, table, user string) (string, error) {
	out, err := db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(table),
		IndexName:                 aws.String(schema.IndexUserConnections),
		KeyConditionExpression:    aws.String("#u = :u"),
		ExpressionAttributeNames:  map[string]string{"#u": schema.AttrUserID},
		ExpressionAttributeValues: map[string]types.AttributeValue{":u": &types.AttributeValueMemberS{Value: user}},
	})
	if err != nil {
		return "", fmt.Errorf("connection of %s: %w", user, err)
	}
	if len(out.Items) != 1 {
		return "", fmt.Errorf("connection of %s: %d items", user, len(out.Items))
	}
	id, _ := out.Items[0][schema.AttrConnectionID].(*types.AttributeValueMemberS)
	return id.Value, nil
}

// leftovers counts what the tables still hold of a connection: its item
// (0 or 1) and its subscriptions.
func leftovers(ctx context.Context, rt *local.Runtime, id string) (item, subs int, err error) {
	db := rt.DynamoDB()
	key := map[string]types.AttributeValue{schema.AttrConnectionID: &types.AttributeValueMemberS{Value: id}}
	got, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(rt.Tables().Connections), Key: key, ConsistentRead: aws.Bool(true)})
	if err != nil {
		return 0, 0, fmt.Errorf("connection %s: %w", id, err)
	}
	out, err := db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(rt.Tables().Subscriptions),
		IndexName:                 aws.String(schema.IndexConnectionSubs),
		KeyConditionExpression:    aws.String("#c = :c"),
		ExpressionAttributeNames:  map[string]string{"#c": schema.AttrConnectionID},
		ExpressionAttributeValues: map[string]types.AttributeValue{":c": &types.AttributeValueMemberS{Value: id}},
		Select:                    types.SelectCount,
	})
	if err != nil {
		return 0, 0, fmt.Errorf("subscriptions of %s: %w", id, err)
	}
	return min(1, len(got.Item)), int(out.Count), nil
}

// connUnderTest is one client connection of the scenario.
type connUnderTest struct {
	user string
	tr   *tracker
	gone bool
	ids  []string // the requests it submitted
}

// TestConnectionsFaults puts a fault handler in front of the @connections
// API: some connections answer 410 Gone (their sockets stay open), a share of
// posts is throttled (429) once, every post is slowed down. It proves the
// healthy connections still get every progress frame and one complete frame
// per request (every frame the API accepted for them arrives; progress frames
// the reporter coalesced while a broadcast was slow are not sent, by design),
// the gone connections are deleted with their subscriptions,
// and the gone connections' requests still complete, readable with status
// from a new connection.
func TestConnectionsFaults(t *testing.T) {
	t.Parallel()
	healthy, gone, perConn := sized(4, 20), sized(2, 10), sized(3, 5)
	const steps = 6
	payload := json.RawMessage(fmt.Sprintf(`{"seconds":%d,"steps":%d}`, steps, steps))
	faults := &connFaults{throttleEvery: 4, latency: 20 * time.Millisecond, jitter: 100 * time.Millisecond}
	proxy := httptest.NewServer(faults)
	t.Cleanup(proxy.Close) // after the runtime stops
	rt := localtest.Start(t, local.Options{Env: map[string]string{
		config.EnvConnectionsEndpoint: proxy.URL + "/local",
		config.EnvRateLimit:           "0",
	}})
	faults.setTarget(rt.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tenant := localtest.Tenant("connfaults")
	o := outcome{Group: groupFaults, Scenario: "@connections faults: 410, 429, latency",
		Size: fmt.Sprintf("%d healthy + %d gone connections × %d requests", healthy, gone, perConn)}
	defer func() { record(t, o) }()

	conns := make([]*connUnderTest, healthy+gone)
	for i := range conns {
		c := &connUnderTest{user: fmt.Sprintf("u%02d", i), gone: i >= healthy}
		c.tr = track(t, rt, tenant, c.user)
		for j := range perConn {
			c.ids = append(c.ids, fmt.Sprintf("%s-r%d", c.user, j))
		}
		conns[i] = c
	}
	// send sends one message on c and checks its answer is of type want.
	send := func(c *connUnderTest, msg protocol.Message, want string) error {
		s, err := c.tr.submit(ctx, msg, 5)
		if err != nil || s.Answer.Type != want {
			return fmt.Errorf("%s %s: %v %s", msg.Action, msg.ID, err, s.Answer.Raw)
		}
		return nil
	}
	// The healthy connections' first requests, which gone ones follow too.
	for _, c := range conns[:healthy] {
		if err := send(c, protocol.Message{Action: "delay", ID: c.ids[0], Payload: payload}, protocol.TypeAcknowledgment); err != nil {
			t.Fatal(err)
		}
	}
	var (
		wg      sync.WaitGroup
		errs    = make(chan error, len(conns))
		goneIDs = make([]string, gone)
	)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := 0
			if !c.gone {
				first = 1
			}
			for _, id := range c.ids[first:] {
				if err := send(c, protocol.Message{Action: "delay", ID: id, Payload: payload}, protocol.TypeAcknowledgment); err != nil {
					errs <- err
					return
				}
			}
			if !c.gone {
				return
			}
			// Follow its own first request and a healthy one's, then go.
			for _, id := range []string{c.ids[0], conns[i%healthy].ids[0]} {
				if err := send(c, protocol.Message{Action: "subscribe", ID: "sub-" + id, Payload: targetOf(id)}, protocol.TypeResponse); err != nil {
					errs <- err
					return
				}
			}
			id, err := connectionOf(ctx, rt.DynamoDB(), rt.Tables().Connections, c.user)
			if err != nil {
				errs <- err
				return
			}
			goneIDs[i-healthy] = id
			faults.markGone(id)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	var acked []string
	for _, c := range conns {
		for _, id := range c.ids {
			acked = append(acked, store.RequestKey(tenant, id))
		}
	}
	reqs := settle(t, rt.DynamoDB(), rt.Tables().Requests, []string{tenant}, 2*time.Minute)
	tally(&o, acked, reqs)
	for _, c := range conns[:healthy] {
		if missing := c.tr.await(ctx, c.ids, protocol.TypeComplete); len(missing) > 0 {
			t.Errorf("%s: no complete frame for %v", c.user, missing)
		}
	}
	time.Sleep(500 * time.Millisecond) // a duplicate frame would arrive
	progressFrames := 0
	for _, c := range conns[:healthy] {
		connID, err := connectionOf(ctx, rt.DynamoDB(), rt.Tables().Connections, c.user)
		if err != nil {
			t.Fatal(err)
		}
		received := 0
		for _, id := range c.ids {
			frames := c.tr.framesOf(id)
			received += len(frames)
			pcts := []float64{0}
			for _, f := range frames {
				var p protocol.Progress
				if f.Type == protocol.TypeProgress && json.Unmarshal([]byte(f.Raw), &p) == nil && p.Percentage > pcts[len(pcts)-1] {
					pcts = append(pcts, p.Percentage)
				}
			}
			progressFrames += len(pcts) - 1
			if got := c.tr.count(id, protocol.TypeProgress); got != len(pcts)-1 || pcts[len(pcts)-1] != 100 {
				t.Errorf("%s: got %d progress frames, %v rising, want them rising to 100", id, got, pcts[1:])
				o.Errors++
			}
			switch n := c.tr.count(id, protocol.TypeComplete); {
			case n > 1:
				o.Duplicated++
				fallthrough
			case n != 1:
				t.Errorf("%s: got %d complete frames, want 1", id, n)
			}
		}
		if sent := faults.acceptedBy(connID); received != sent {
			t.Errorf("%s: got %d frames, the API accepted %d for it", c.user, received, sent)
			o.Errors++
		}
	}
	// The gone connections: deleted with their subscriptions; their
	// requests completed, as a new connection reads.
	reader := &connUnderTest{user: "reader", tr: track(t, rt, tenant, "reader")}
	for i, id := range goneIDs {
		item, subs, err := leftovers(ctx, rt, id)
		if err != nil {
			t.Fatal(err)
		}
		if item+subs > 0 {
			t.Errorf("gone connection %s left %d item and %d subscriptions", id, item, subs)
			o.Errors++
		}
		for _, rid := range conns[healthy+i].ids {
			s, err := reader.tr.submit(ctx, protocol.Message{Action: "status", ID: "status-" + rid, Payload: targetOf(rid)}, 5)
			var data struct {
				Data protocol.StatusData `json:"data"`
			}
			if err == nil {
				err = json.Unmarshal([]byte(s.Answer.Raw), &data)
			}
			if err != nil || data.Data.Status != string(store.StatusCompleted) || len(data.Data.Result) == 0 {
				t.Errorf("status of %s from a new connection: %v %s", rid, err, s.Answer.Raw)
				o.Errors++
			}
		}
	}
	if o.Completed != len(acked) {
		t.Errorf("got %d of %d requests completed: %+v", o.Completed, len(acked), o)
	}
	calls, goneAnswers, throttled := faults.counts()
	o.Notes = fmt.Sprintf("%d @connections calls: %d answered 410 for %d gone connections (deleted with their subscriptions), %d throttled (429) once, "+
		"every forwarded one delayed %s–%s; the healthy connections got every frame the API accepted for them: %d progress frames for %d steps "+
		"(the rest coalesced while a broadcast was slow, as designed)",
		calls, goneAnswers, gone, throttled, faults.latency, faults.latency+faults.jitter, progressFrames, healthy*perConn*steps)
}
