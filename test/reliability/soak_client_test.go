package reliability

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/streamer-dev/streamer/functions/protocol"
	"github.com/streamer-dev/streamer/functions/store"
)

// soakFrame is any server frame, as the soak reads it.
type soakFrame struct {
	Type      string              `json:"type"`
	RequestID string              `json:"request_id"`
	Success   bool                `json:"success"`
	Data      json.RawMessage     `json:"data"`
	Error     *protocol.ErrorBody `json:"error"`
}

// code is the frame's error code, if any.
func (f soakFrame) code() string {
	if f.Error == nil {
		return ""
	}
	return f.Error.Code
}

// cancelResult is the answer to a soak client's first cancel of a request.
type cancelResult int

const (
	cancelNone cancelResult = iota // never cancelled
	cancelDone                     // cancelled: it must end CANCELLED
	cancelLate                     // refused, the request was already final
)

// soakRequest is one async request of a soak client and what the client
// saw of it.
type soakRequest struct {
	id      string
	action  string // "delay", or "fail" (permanent: FAILED by design)
	payload json.RawMessage

	cancel  cancelResult
	acked   bool         // acknowledged, or found by a resend, status or subscribe
	outcome store.Status // from its final frame or a status answer
	// finals counts final frames per connection; refollowed marks the
	// connections that followed it again (a resend or subscribe after a
	// reconnect), where the router may send the final frame twice.
	finals     map[int]int
	refollowed map[int]bool
	conflicts  int // final frames or statuses that disagree with outcome
	progress   int
}

// expected is the final state the request must reach.
func (r *soakRequest) expected() store.Status {
	switch {
	case r.cancel == cancelDone:
		return store.StatusCancelled
	case r.action == "fail":
		return store.StatusFailed
	default:
		return store.StatusCompleted
	}
}

// settleOutcome records a final state seen for the request.
func (r *soakRequest) settleOutcome(s store.Status) {
	switch {
	case r.outcome == "":
		r.outcome = s
	case r.outcome != s:
		r.conflicts++
	}
}

// errConnectionLost ends a call whose connection dropped.
var errConnectionLost = errors.New("connection lost")

// soakClient is one user of the soak on a raw WebSocket, which sees every
// frame: it submits its requests, cancels some, drops its connection once
// when dropAt ≥ 0 and recovers on a new one with status and subscribe.
type soakClient struct {
	url, token string
	tenant     string
	reqs       []*soakRequest
	byID       map[string]*soakRequest
	rng        *rand.Rand
	dropAt     int     // index of the request sent just before the drop; -1: none
	cancels    float64 // share of submissions followed by a cancel

	mu          sync.Mutex
	ws          *websocket.Conn
	conn        int           // connection number, from 1
	dead        chan struct{} // closed when the connection's reader ends
	waiting     map[string]chan soakFrame
	seq         int
	rateLimited int
	unexpected  []string
}

// newSoakClient plans perConn requests with ids prefixed by name, for a
// user of tenant whose token is token.
func newSoakClient(url, tenant, token, name string, perConn int, seed uint64) *soakClient {
	rng := rand.New(rand.NewPCG(seed, 0x50a4))
	c := &soakClient{url: url, tenant: tenant, token: token, byID: map[string]*soakRequest{}, rng: rng, dropAt: -1, cancels: 0.15,
		waiting: map[string]chan soakFrame{}}
	if rng.IntN(4) == 0 {
		c.dropAt = perConn/4 + rng.IntN(perConn/2+1)
	}
	for j := range perConn {
		r := &soakRequest{id: fmt.Sprintf("%s-%d", name, j), action: "delay", finals: map[int]int{}, refollowed: map[int]bool{}}
		r.payload = fmt.Appendf(nil, `{"seconds":%.2f,"steps":%d}`, 0.1+0.5*rng.Float64(), 1+rng.IntN(4))
		if j%10 == 9 {
			r.action, r.payload = "fail", json.RawMessage(`{"permanent":true}`)
		}
		c.reqs = append(c.reqs, r)
		c.byID[r.id] = r
	}
	return c
}

// run plays the client's plan, waits for every request's outcome, then
// cancels a completed one.
func (c *soakClient) run(ctx context.Context) error {
	if err := c.connect(ctx); err != nil {
		return err
	}
	defer func() { _ = c.current().CloseNow() }()
	for j, r := range c.reqs {
		submit := c.submit
		if j == c.dropAt {
			submit = c.dropAndResume
		}
		if err := submit(ctx, r); err != nil {
			return fmt.Errorf("request %s: %w", r.id, err)
		}
		if c.rng.Float64() < c.cancels {
			if err := c.cancel(ctx, c.reqs[max(0, j-c.rng.IntN(4))]); err != nil {
				return err
			}
		}
	}
	if err := c.wait(ctx); err != nil {
		return err
	}
	return c.cancelFinished(ctx)
}

// cancelFinished cancels the first request that completed, once every
// outcome is known: the cancel is refused and the request stays COMPLETED.
func (c *soakClient) cancelFinished(ctx context.Context) error {
	for _, r := range c.reqs {
		c.mu.Lock()
		done := r.outcome == store.StatusCompleted && r.cancel == cancelNone
		c.mu.Unlock()
		if !done {
			continue
		}
		if err := c.cancel(ctx, r); err != nil {
			return err
		}
		c.mu.Lock()
		late := r.cancel == cancelLate
		c.mu.Unlock()
		if !late {
			c.note("%s: a cancel after completion was not refused as late", r.id)
		}
		return nil
	}
	return nil
}

// connect dials a new connection and starts reading it.
func (c *soakClient) connect(ctx context.Context) error {
	ws, _, err := websocket.Dial(ctx, c.url+"?token="+c.token, nil)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	ws.SetReadLimit(1 << 20)
	c.mu.Lock()
	c.ws, c.dead = ws, make(chan struct{})
	c.conn++
	conn, dead := c.conn, c.dead
	c.mu.Unlock()
	go c.read(ws, conn, dead)
	return nil
}

// current is the connection in use.
func (c *soakClient) current() *websocket.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ws
}

// read handles the frames of connection conn until it ends.
func (c *soakClient) read(ws *websocket.Conn, conn int, dead chan struct{}) {
	defer close(dead)
	for {
		_, data, err := ws.Read(context.Background())
		if err != nil {
			return
		}
		var f soakFrame
		if err := json.Unmarshal(data, &f); err != nil {
			c.note("undecodable frame %.200s", data)
			continue
		}
		c.mu.Lock()
		c.handle(f, conn)
		if ch := c.waiting[f.RequestID]; ch != nil && f.Type != protocol.TypeProgress {
			delete(c.waiting, f.RequestID)
			ch <- f
		}
		c.mu.Unlock()
	}
}

// handle records a frame about one of the client's requests; c.mu is held.
func (c *soakClient) handle(f soakFrame, conn int) {
	r := c.byID[f.RequestID]
	if r == nil {
		return // the answer to a built-in action
	}
	switch f.Type {
	case protocol.TypeAcknowledgment:
		r.acked = true
	case protocol.TypeProgress:
		r.progress++
	case protocol.TypeComplete:
		r.acked = true
		r.finals[conn]++
		switch {
		case f.Success:
			r.settleOutcome(store.StatusCompleted)
		case f.code() == protocol.CodeCancelled:
			r.settleOutcome(store.StatusCancelled)
		default:
			r.settleOutcome(store.StatusFailed)
		}
	}
}

// note records something the soak did not expect.
func (c *soakClient) note(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unexpected = append(c.unexpected, fmt.Sprintf(format, args...))
}

// call sends msg and returns the first frame answering it (not progress).
func (c *soakClient) call(ctx context.Context, msg protocol.Message) (soakFrame, error) {
	data, err := json.Marshal(msg)
	if err != nil {
		return soakFrame{}, err
	}
	answer := make(chan soakFrame, 1)
	c.mu.Lock()
	c.waiting[msg.ID] = answer
	ws, dead := c.ws, c.dead
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiting, msg.ID)
		c.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageText, data); err != nil {
		return soakFrame{}, fmt.Errorf("write %s: %w", msg.Action, err)
	}
	select {
	case f := <-answer:
		return f, nil
	case <-dead:
		return soakFrame{}, errConnectionLost
	case <-ctx.Done():
		return soakFrame{}, fmt.Errorf("no answer to %s %s: %w", msg.Action, msg.ID, ctx.Err())
	}
}

// ask is call, sending msg again (same id) after each RATE_LIMITED answer
// once the hinted delay has passed.
func (c *soakClient) ask(ctx context.Context, msg protocol.Message) (soakFrame, error) {
	for {
		f, err := c.call(ctx, msg)
		if err != nil || f.Type != protocol.TypeError || f.code() != protocol.CodeRateLimited {
			return f, err
		}
		c.mu.Lock()
		c.rateLimited++
		c.mu.Unlock()
		wait, _ := f.Error.Details["retry_after_ms"].(float64)
		select {
		case <-time.After(time.Duration(max(wait, 10)) * time.Millisecond):
		case <-ctx.Done():
			return f, ctx.Err()
		}
	}
}

// builtin sends a built-in action about request r with an id of its own.
func (c *soakClient) builtin(ctx context.Context, action string, r *soakRequest) (soakFrame, error) {
	c.mu.Lock()
	c.seq++
	id := fmt.Sprintf("%s-%s-%d", action, r.id, c.seq)
	c.mu.Unlock()
	payload, err := json.Marshal(protocol.Target{RequestID: r.id})
	if err != nil {
		return soakFrame{}, err
	}
	return c.ask(ctx, protocol.Message{Action: action, ID: id, Payload: payload})
}

// message is the protocol message that submits r.
func (r *soakRequest) message() protocol.Message {
	return protocol.Message{Action: r.action, ID: r.id, Payload: r.payload}
}

// submit sends r until it is acknowledged (or already final).
func (c *soakClient) submit(ctx context.Context, r *soakRequest) error {
	f, err := c.ask(ctx, r.message())
	if err != nil {
		return err
	}
	switch f.Type {
	case protocol.TypeAcknowledgment, protocol.TypeComplete:
		c.mu.Lock()
		r.acked = true
		c.mu.Unlock()
	default:
		c.note("%s answered with %s %s", r.id, f.Type, f.code())
	}
	return nil
}

// cancel cancels r and records whether it was cancelled or already final.
func (c *soakClient) cancel(ctx context.Context, r *soakRequest) error {
	f, err := c.builtin(ctx, "cancel", r)
	if err != nil {
		return fmt.Errorf("cancel %s: %w", r.id, err)
	}
	var got cancelResult
	switch {
	case f.Type == protocol.TypeResponse && f.Success:
		got = cancelDone
	case f.code() == protocol.CodeValidation && strings.Contains(f.Error.Message, "already"):
		got = cancelLate
	default:
		c.note("cancel %s answered with %s %s", r.id, f.Type, f.code())
		return nil
	}
	c.mu.Lock()
	if r.cancel == cancelNone {
		r.cancel = got
	}
	c.mu.Unlock()
	return nil
}

// dropAndResume sends r and closes the connection at once, without waiting
// for the answer; on a new connection it sends r again with the same id and
// recovers every earlier request that is not final yet.
func (c *soakClient) dropAndResume(ctx context.Context, r *soakRequest) error {
	data, err := json.Marshal(r.message())
	if err != nil {
		return err
	}
	ws := c.current()
	if err := ws.Write(ctx, websocket.MessageText, data); err != nil {
		return fmt.Errorf("write before the drop: %w", err)
	}
	_ = ws.Close(websocket.StatusNormalClosure, "soak reconnect")
	if err := c.connect(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	conn := c.conn
	r.refollowed[conn] = true
	c.mu.Unlock()
	if err := c.submit(ctx, r); err != nil {
		return err
	}
	for _, earlier := range c.reqs {
		if earlier == r {
			break
		}
		if err := c.resume(ctx, earlier, conn); err != nil {
			return fmt.Errorf("recover %s: %w", earlier.id, err)
		}
	}
	return nil
}

// status asks for the state of r; ok is false (and the answer noted) when
// it is not a status.
func (c *soakClient) status(ctx context.Context, r *soakRequest) (st store.Status, ok bool, err error) {
	f, err := c.builtin(ctx, "status", r)
	if err != nil {
		return "", false, err
	}
	var data protocol.StatusData
	if f.Type != protocol.TypeResponse || json.Unmarshal(f.Data, &data) != nil {
		c.note("status %s answered with %s %s", r.id, f.Type, f.code())
		return "", false, nil
	}
	return store.Status(data.Status), true, nil
}

// resume asks for the status of a request not known final and subscribes
// to it when it is still running.
func (c *soakClient) resume(ctx context.Context, r *soakRequest, conn int) error {
	c.mu.Lock()
	known := r.outcome != ""
	c.mu.Unlock()
	if known {
		return nil
	}
	st, ok, err := c.status(ctx, r)
	if err != nil || !ok {
		return err
	}
	c.mu.Lock()
	r.acked = true
	if st.Final() {
		r.settleOutcome(st)
		c.mu.Unlock()
		return nil
	}
	r.refollowed[conn] = true
	c.mu.Unlock()
	f, err := c.builtin(ctx, "subscribe", r)
	if err != nil {
		return err
	}
	if f.Type != protocol.TypeResponse || !f.Success {
		c.note("subscribe %s answered with %s %s", r.id, f.Type, f.code())
	}
	return nil
}

// wait waits until every request's outcome is known. Once a minute it pings
// (the endpoint closes idle connections) and asks for the status of the
// open requests: one final in DynamoDB at two checks in a row never got its
// final frame, which is noted (and its outcome taken from the status).
func (c *soakClient) wait(ctx context.Context) error {
	check := time.NewTicker(time.Minute)
	defer check.Stop()
	suspects := map[*soakRequest]bool{}
	for c.open() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d requests without an outcome: %w", c.open(), ctx.Err())
		case <-time.After(100 * time.Millisecond):
			continue
		case <-check.C:
		}
		c.mu.Lock()
		c.seq++
		ping := protocol.Message{Action: "ping", ID: fmt.Sprintf("ping-%d", c.seq)}
		c.mu.Unlock()
		if _, err := c.ask(ctx, ping); err != nil {
			return fmt.Errorf("ping: %w", err)
		}
		for _, r := range c.reqs {
			if err := c.checkFinalFrame(ctx, r, suspects); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkFinalFrame looks for a request final in DynamoDB whose final frame
// has not come: a suspect the first time, noted the second.
func (c *soakClient) checkFinalFrame(ctx context.Context, r *soakRequest, suspects map[*soakRequest]bool) error {
	c.mu.Lock()
	known := r.outcome != ""
	c.mu.Unlock()
	if known {
		return nil
	}
	st, ok, err := c.status(ctx, r)
	if err != nil || !ok || !st.Final() {
		return err
	}
	if !suspects[r] {
		suspects[r] = true
		return nil
	}
	c.note("%s: %s in DynamoDB for a minute, but its final frame never came", r.id, st)
	c.mu.Lock()
	r.settleOutcome(st)
	c.mu.Unlock()
	return nil
}

// open counts the requests whose outcome the client does not know yet.
func (c *soakClient) open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.reqs {
		if r.outcome == "" {
			n++
		}
	}
	return n
}
