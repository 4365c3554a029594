package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/streamer-dev/streamer/functions/protocol"
	"github.com/streamer-dev/streamer/local"
	"github.com/streamer-dev/streamer/local/localtest"
)

// tracker is a client connection that files every server frame by request
// id, so a scenario can count what each request showed the client (answers,
// complete frames) while many requests run at once.
type tracker struct {
	w *wire

	mu      sync.Mutex
	frames  map[string][]wireFrame
	answers map[string]chan wireFrame
	changed chan struct{} // closed and replaced on every frame
	readErr error
	stopped chan struct{}
}

// answerTypes are the frames that answer a submitted message.
var answerTypes = []string{protocol.TypeAcknowledgment, protocol.TypeResponse, protocol.TypeComplete, protocol.TypeError}

// track connects user of tenant to rt and files its frames until the test ends.
func track(t *testing.T, rt *local.Runtime, tenant, user string) *tracker {
	t.Helper()
	tr := &tracker{
		w:      dialWire(t, rt, localtest.Token(t, rt, tenant, user)),
		frames: map[string][]wireFrame{}, answers: map[string]chan wireFrame{},
		changed: make(chan struct{}), stopped: make(chan struct{}),
	}
	go tr.read()
	t.Cleanup(func() {
		_ = tr.w.ws.CloseNow()
		<-tr.stopped
	})
	return tr
}

// read files frames until the connection fails or is closed; it waits for
// frames as long as it takes (a request may run for a while).
func (tr *tracker) read() {
	defer close(tr.stopped)
	for {
		f, err := tr.w.read(context.Background())
		tr.mu.Lock()
		if err != nil {
			tr.readErr = err
			close(tr.changed)
			tr.mu.Unlock()
			return
		}
		tr.frames[f.RequestID] = append(tr.frames[f.RequestID], f)
		if ch, ok := tr.answers[f.RequestID]; ok && slices.Contains(answerTypes, f.Type) {
			select {
			case ch <- f:
			default: // nobody waits for that many answers
			}
		}
		close(tr.changed)
		tr.changed = make(chan struct{})
		tr.mu.Unlock()
	}
}

// retryable reports whether an error frame invites the client to send the
// same message again: a transient server failure or a rate limit.
func retryable(f wireFrame) bool {
	return f.Type == protocol.TypeError && f.Error != nil &&
		(f.Error.Code == protocol.CodeInternal || f.Error.Code == protocol.CodeRateLimited)
}

// submission is what became of a message sent until answered.
type submission struct {
	// Answer is the last answer: an acknowledgment, response or complete
	// frame when the message got through, an error frame otherwise.
	Answer wireFrame
	// Sends is how often the message was sent; Errors holds the error
	// frames that made the client send it again.
	Sends  int
	Errors []wireFrame
}

// submit sends msg and waits for its answer; while the answer is a retryable
// error it sends the very same message (same id) again, with backoff, up to
// attempts times in all. msg.ID must be set and unique on the connection.
func (tr *tracker) submit(ctx context.Context, msg protocol.Message, attempts int) (submission, error) {
	data, err := json.Marshal(msg)
	if err != nil {
		return submission{}, err
	}
	ch := make(chan wireFrame, 64)
	tr.mu.Lock()
	tr.answers[msg.ID] = ch
	tr.mu.Unlock()
	var s submission
	for backoff := 20 * time.Millisecond; ; backoff *= 2 {
		s.Sends++
		if err := tr.w.send(websocket.MessageText, data); err != nil {
			return s, fmt.Errorf("send %s: %w", msg.ID, err)
		}
		select {
		case s.Answer = <-ch:
		case <-tr.stopped:
			return s, fmt.Errorf("await answer to %s: %w", msg.ID, tr.err())
		case <-ctx.Done():
			return s, fmt.Errorf("await answer to %s: %w", msg.ID, ctx.Err())
		}
		if !retryable(s.Answer) || s.Sends >= attempts {
			return s, nil
		}
		s.Errors = append(s.Errors, s.Answer)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return s, ctx.Err()
		}
	}
}

// err is why the connection stopped reading, if it did.
func (tr *tracker) err() error {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.readErr
}

// count is the number of frames of type typ the request id got.
func (tr *tracker) count(id, typ string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, f := range tr.frames[id] {
		if f.Type == typ {
			n++
		}
	}
	return n
}

// framesOf returns the frames the request id got, in order.
func (tr *tracker) framesOf(id string) []wireFrame {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.frames[id])
}

// await waits until every request of ids got a frame of type typ, the
// connection fails or ctx ends; it returns the ids still without one.
func (tr *tracker) await(ctx context.Context, ids []string, typ string) []string {
	for {
		tr.mu.Lock()
		var missing []string
		for _, id := range ids {
			if !slices.ContainsFunc(tr.frames[id], func(f wireFrame) bool { return f.Type == typ }) {
				missing = append(missing, id)
			}
		}
		changed, failed := tr.changed, tr.readErr != nil
		tr.mu.Unlock()
		if len(missing) == 0 || failed {
			return missing
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return missing
		}
	}
}

// success reads a response or complete frame's success field.
func success(f wireFrame) bool { return string(f.Fields["success"]) == "true" }
