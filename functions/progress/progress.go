// Package progress is the processor's actions.Reporter: it pushes progress
// frames to a request's subscribers as they come, coalescing updates above a
// rate, and persists the last progress and checkpoint on the request at most
// once per interval, so `status` and a resubscribe see them.
package progress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/streamer-dev/streamer/functions/actions"
	"github.com/streamer-dev/streamer/functions/notify"
	"github.com/streamer-dev/streamer/functions/protocol"
	"github.com/streamer-dev/streamer/functions/store"
)

// Defaults of Config's zero fields.
const (
	DefaultRate         = 10 // frames per second per request
	DefaultPersistEvery = time.Second
	// MaxCheckpointBytes bounds a checkpoint's JSON, well under the item limit.
	MaxCheckpointBytes = 32 << 10
)

// ErrCheckpointTooLarge: the checkpoint's JSON exceeds MaxCheckpointBytes.
var ErrCheckpointTooLarge = errors.New("checkpoint too large")

// Broadcaster sends a frame to a request's subscribers (*notify.Notifier).
type Broadcaster interface {
	Broadcast(ctx context.Context, a notify.Audience, eventType string, frame any) (int, error)
}

// Saver persists progress while the run holds the lease (*store.Store).
type Saver interface {
	SaveProgress(ctx context.Context, key, owner string, p store.Progress) error
}

// Config tunes a Reporter.
type Config struct {
	// Rate is the most progress frames per second; faster updates are
	// coalesced into the latest. Default 10.
	Rate float64
	// PersistEvery is the least time between two progress writes. Default 1s.
	PersistEvery time.Duration
}

// Run identifies the request a Reporter reports on.
type Run struct {
	Key       string // table key
	Submitter string // the submitting connection while it follows the request (store.Request.Submitter)
	ID        string // client-visible id, in frames
	Owner     string // lease owner, for conditional writes
}

// Reporter implements actions.Reporter for one run. Frames go out from one
// goroutine in order; Close flushes what is pending.
type Reporter struct {
	ctx    context.Context
	run    Run
	b      Broadcaster
	s      Saver
	logger *slog.Logger
	every  time.Duration // between frames
	save   time.Duration // between writes

	sendMu sync.Mutex // held from taking a frame to its broadcast, so frames keep their order

	mu        sync.Mutex
	frame     *protocol.Progress // latest unsent frame
	urgent    bool               // the latest frame is 100%: send without waiting
	state     store.Progress     // latest progress and checkpoint
	dirty     bool               // state not yet persisted
	lastFrame time.Time
	lastSave  time.Time
	frames    int // broadcasts made
	delivered int // frames delivered to connections
	leaseLost bool

	wake chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
}

var _ actions.Reporter = (*Reporter)(nil)

// New starts a reporter for run. ctx bounds its sends and writes (the
// invocation, not the handler's context, so progress reported just before a
// cancel still goes out). Call Close when the handler returns.
func New(ctx context.Context, cfg Config, run Run, b Broadcaster, s Saver, logger *slog.Logger) *Reporter {
	if cfg.Rate <= 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.PersistEvery <= 0 {
		cfg.PersistEvery = DefaultPersistEvery
	}
	r := &Reporter{ctx: ctx, run: run, b: b, s: s, logger: logger,
		every: time.Duration(float64(time.Second) / cfg.Rate), save: cfg.PersistEvery,
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	r.wg.Add(1)
	go r.loop()
	return r
}

// Resume seeds the persisted state with what the request already holds (a
// retry or reclaim), so an early write does not lose the checkpoint.
func (r *Reporter) Resume(p store.Progress) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state = p
}

// Report queues a progress frame for every subscriber. percent is clamped to
// 0–100.
func (r *Reporter) Report(percent float64, message string, metadata map[string]any) {
	percent = max(0, min(100, percent))
	r.mu.Lock()
	if r.urgent && percent < 100 {
		// Never coalesce a 100% frame away: send it before taking the next.
		r.mu.Unlock()
		r.flushFrame()
		r.mu.Lock()
	}
	r.frame = &protocol.Progress{Type: protocol.TypeProgress, RequestID: r.run.ID, Percentage: percent, Message: message, Metadata: metadata}
	r.urgent = percent >= 100
	r.state.Percent, r.state.Message = percent, message
	r.dirty = true
	r.mu.Unlock()
	r.signal()
}

// Checkpoint records state (marshalled to JSON) to resume from after a retry
// or reclaim. It is persisted with the next progress write and at the end.
func (r *Reporter) Checkpoint(state any) error {
	b, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if len(b) > MaxCheckpointBytes {
		return fmt.Errorf("checkpoint of %d bytes: %w (limit %d)", len(b), ErrCheckpointTooLarge, MaxCheckpointBytes)
	}
	r.mu.Lock()
	r.state.Checkpoint = string(b)
	r.dirty = true
	r.mu.Unlock()
	r.signal()
	return nil
}

func (r *Reporter) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// loop sends frames no faster than every and writes progress no more often
// than save, until Close.
func (r *Reporter) loop() {
	defer r.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-r.wake:
		case <-timer.C:
		}
		next := r.step(time.Now())
		timer.Stop()
		if next > 0 {
			timer.Reset(next)
		}
	}
}

// step does what is due at now and returns how long until the next thing is
// due (0: nothing pending).
func (r *Reporter) step(now time.Time) time.Duration {
	r.mu.Lock()
	frameWait := time.Duration(0)
	if r.frame != nil && !r.urgent {
		frameWait = r.lastFrame.Add(r.every).Sub(now)
	}
	sendFrame := r.frame != nil && frameWait <= 0
	saveWait := time.Duration(0)
	if r.dirty {
		saveWait = r.lastSave.Add(r.save).Sub(now)
	}
	save := r.dirty && saveWait <= 0
	r.mu.Unlock()
	if sendFrame {
		r.flushFrame()
	}
	if save {
		r.persist()
	}
	var next time.Duration
	for _, w := range []time.Duration{frameWait, saveWait} {
		if w > 0 && (next == 0 || w < next) {
			next = w
		}
	}
	return next
}

// flushFrame broadcasts the pending frame, if any.
func (r *Reporter) flushFrame() {
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	r.mu.Lock()
	f := r.frame
	r.frame, r.urgent = nil, false
	if f != nil {
		r.lastFrame = time.Now()
	}
	r.mu.Unlock()
	if f == nil {
		return
	}
	n, err := r.b.Broadcast(r.ctx, notify.Audience{RequestKey: r.run.Key, Submitter: r.run.Submitter}, protocol.EventProgress, f)
	if err != nil {
		r.logger.WarnContext(r.ctx, "send progress", "error", err)
	}
	r.mu.Lock()
	r.frames++
	r.delivered += n
	r.mu.Unlock()
}

// persist writes the latest state when it changed since the last write.
func (r *Reporter) persist() {
	r.mu.Lock()
	if !r.dirty || r.leaseLost {
		r.mu.Unlock()
		return
	}
	p := r.state
	r.dirty, r.lastSave = false, time.Now()
	r.mu.Unlock()
	err := r.s.SaveProgress(r.ctx, r.run.Key, r.run.Owner, p)
	switch {
	case errors.Is(err, store.ErrLeaseLost):
		r.mu.Lock()
		r.leaseLost = true
		r.mu.Unlock()
	case err != nil:
		r.logger.WarnContext(r.ctx, "save progress", "error", err)
		r.mu.Lock()
		r.dirty = true
		r.mu.Unlock()
	}
}

// Close stops the reporter: the pending frame goes out, and with persist the
// latest progress and checkpoint are written (a run that will be retried;
// a completed run's final write supersedes them).
func (r *Reporter) Close(persist bool) {
	select {
	case <-r.done:
		return
	default:
	}
	close(r.done)
	r.wg.Wait()
	r.flushFrame()
	if persist {
		r.persist()
	}
}

// Stats returns the progress frames broadcast and the deliveries they made.
func (r *Reporter) Stats() (frames, delivered int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.frames, r.delivered
}

// LeaseLost reports whether a progress write found the lease gone (cancelled
// or reclaimed).
func (r *Reporter) LeaseLost() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leaseLost
}
