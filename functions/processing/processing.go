// Package processing is the processor Lambda's handler. It runs queued async
// requests exactly once although DynamoDB Streams and SQS deliver at least
// once: every run starts with a conditional claim (a lease with an owner and
// an expiry) and every later write is conditional on that lease.
//
// Two event sources feed it. The requests table's stream delivers new PENDING
// requests (INSERT records, filtered by streamfilter). The retry queue, an SQS
// queue with per-message delays, delivers wake-ups: due retries, scheduled
// requests (process_after) and lease watchdogs that reclaim a crashed run.
package processing

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"golang.org/x/sync/errgroup"

	"github.com/streamer-dev/streamer/functions/actions"
	"github.com/streamer-dev/streamer/functions/metrics"
	"github.com/streamer-dev/streamer/functions/progress"
	"github.com/streamer-dev/streamer/functions/store"
	"github.com/streamer-dev/streamer/functions/streamfilter"
	"github.com/streamer-dev/streamer/functions/tracing"
)

// Store is the request storage the processor uses (*store.Store).
type Store interface {
	progress.Saver
	Claim(ctx context.Context, key, owner string, leaseUntil time.Time) (store.Request, bool, error)
	Complete(ctx context.Context, r store.Request, owner, result string) error
	Fail(ctx context.Context, r store.Request, owner string, info store.ErrorInfo) error
	ScheduleRetry(ctx context.Context, key, owner string, due time.Time, info store.ErrorInfo) error
	RequestByKey(ctx context.Context, key string) (store.Request, error)
	DueRequests(ctx context.Context, priority int, now, settled time.Time, limit int) ([]store.Request, error)
	Owned(ctx context.Context, key, owner string) (bool, error)
}

// Broadcaster sends a frame to a request's subscribers (*notify.Notifier).
type Broadcaster = progress.Broadcaster

// Defaults of Config's zero fields.
const (
	DefaultConcurrency  = 10
	DefaultSafetyMargin = 2 * time.Second
	DefaultMinRemaining = 10 * time.Second
	DefaultLeaseGrace   = 5 * time.Second
	DefaultCancelPoll   = time.Second
	// noDeadline stands in for the invocation deadline when ctx has none.
	noDeadline = 15 * time.Minute
)

// Config tunes the processor.
type Config struct {
	// RetryQueueURL is the SQS queue of wake-ups; DeadLetterQueueURL receives
	// requests that failed for good.
	RetryQueueURL, DeadLetterQueueURL string
	// Concurrency bounds the records of one batch that run at once. Default 10.
	Concurrency int
	// SafetyMargin is kept between a handler's deadline and the invocation's,
	// for the final writes and frames. Default 2s.
	SafetyMargin time.Duration
	// MinRemaining: records that would start with less invocation time left
	// are handed back (batch item failures) to be redelivered. Default 10s.
	MinRemaining time.Duration
	// LeaseGrace is added to a run's deadline to form its lease expiry.
	// Default 5s.
	LeaseGrace time.Duration
	// CancelPoll is how often a running request's status is checked for a
	// cancel. Default 1s.
	CancelPoll time.Duration
	// Progress tunes the progress reporter.
	Progress progress.Config
	// Tracer records an X-Ray subsegment around every handler run; nil
	// records nothing.
	Tracer *tracing.Tracer
}

func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	def(&c.SafetyMargin, DefaultSafetyMargin)
	def(&c.MinRemaining, DefaultMinRemaining)
	def(&c.LeaseGrace, DefaultLeaseGrace)
	def(&c.CancelPoll, DefaultCancelPoll)
	return c
}

// Handler is the processor. It is safe for concurrent use.
type Handler struct {
	reg     *actions.Registry
	store   Store
	notify  Broadcaster
	queue   Queue
	metrics *metrics.Writer
	logger  *slog.Logger
	cfg     Config
	now     func() time.Time
}

// New returns a processor running reg's actions.
func New(reg *actions.Registry, st Store, b Broadcaster, q Queue, m *metrics.Writer, cfg Config, logger *slog.Logger) *Handler {
	return &Handler{reg: reg, store: st, notify: b, queue: q, metrics: m, logger: logger, cfg: cfg.withDefaults(), now: time.Now}
}

// deadline is the invocation's deadline (or a far one when ctx has none).
func (h *Handler) deadline(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return h.now().Add(noDeadline)
}

// tooLate reports whether a record must not start: too little time is left.
func (h *Handler) tooLate(ctx context.Context) bool {
	return ctx.Err() != nil || h.deadline(ctx).Sub(h.now()) < h.cfg.MinRemaining
}

// HandleStream processes a batch of requests-table stream records. Records the
// event source mapping's filter would drop are skipped; records that fail
// transiently (or arrive too close to the deadline) are returned as batch item
// failures, by sequence number, so only they are redelivered.
func (h *Handler) HandleStream(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	var (
		mu   sync.Mutex
		resp events.DynamoDBEventResponse
		g    errgroup.Group
	)
	g.SetLimit(h.cfg.Concurrency)
	for _, rec := range ev.Records {
		fail := func() {
			mu.Lock()
			defer mu.Unlock()
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.DynamoDBBatchItemFailure{ItemIdentifier: rec.Change.SequenceNumber})
		}
		if !streamfilter.Match(rec) {
			continue
		}
		g.Go(func() error {
			if h.tooLate(ctx) {
				fail()
				return nil
			}
			if err := h.streamRecord(ctx, rec); err != nil {
				h.logger.ErrorContext(ctx, "stream record", "event_id", rec.EventID, "error", err)
				fail()
			}
			return nil
		})
	}
	_ = g.Wait() // failures are collected in resp
	return resp, nil
}

// streamRecord starts a new request, or schedules it when it is not yet due.
func (h *Handler) streamRecord(ctx context.Context, rec events.DynamoDBEventRecord) error {
	r, err := requestFromImage(rec.Change.NewImage)
	if err != nil {
		return err
	}
	if r.ProcessAfter > h.now().UnixMilli() {
		return h.enqueue(ctx, wakeupFor(r, r.ProcessAfter, reasonScheduled))
	}
	return h.run(ctx, r, 0)
}

// HandleQueue processes a batch of retry-queue wake-ups. The wake-ups that
// are due trigger a sweep of the priority-queue index: up to as many due
// retries and scheduled requests as the batch brought run first, in index
// order (Priority descending, then ProcessAfter), whether or not their own
// wake-up has arrived yet; then the batch's own requests the sweep did not
// take (lease watchdogs among them), in the same order. A wake-up that is not
// due yet re-enqueues itself. Messages that fail transiently are returned as
// batch item failures, by message id.
func (h *Handler) HandleQueue(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var (
		mu   sync.Mutex
		resp events.SQSEventResponse
	)
	fail := func(id string) {
		mu.Lock()
		defer mu.Unlock()
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: id})
	}
	due := map[string]queued{} // by request key
	minPriority := store.MaxPriority
	for _, m := range ev.Records {
		var w wakeup
		if err := json.Unmarshal([]byte(m.Body), &w); err != nil || w.RequestKey == "" {
			h.logger.ErrorContext(ctx, "drop malformed wake-up", "message_id", m.MessageId, "body", m.Body, "error", err)
			continue
		}
		if w.DueMs > h.now().UnixMilli() {
			// Early: a chained long delay. Send the next link.
			if err := h.enqueue(ctx, w); err != nil {
				h.logger.ErrorContext(ctx, "re-enqueue wake-up", "request_key", w.RequestKey, "error", err)
				fail(m.MessageId)
			}
			continue
		}
		if _, dup := due[w.RequestKey]; dup {
			continue // one run per request per batch; the duplicate message is done with
		}
		due[w.RequestKey] = queued{msgID: m.MessageId, w: w}
		minPriority = min(minPriority, max(w.Priority, 0))
	}
	if len(due) == 0 {
		return resp, nil
	}
	jobs := h.sweep(ctx, len(due), minPriority, due)
	// A wake-up that meets a transient error goes back to the queue, due
	// shortly, rather than failing its message: a failed message returns
	// only after the queue's visibility timeout (90 minutes as deployed).
	// Only when that send fails too is the message failed.
	again := func(q queued, err error) {
		h.logger.ErrorContext(ctx, "wake-up", "request_key", q.w.RequestKey, "reason", q.w.Reason, "error", err)
		if q.msgID == "" {
			return // found by the sweep: its own wake-up is still queued
		}
		q.w.DueMs = h.now().Add(wakeAgain).UnixMilli()
		if err := h.enqueue(ctx, q.w); err != nil {
			h.logger.ErrorContext(ctx, "re-enqueue wake-up", "request_key", q.w.RequestKey, "error", err)
			fail(q.msgID)
		}
	}
	jobs = append(jobs, h.leftovers(ctx, due, again)...)

	var g errgroup.Group
	g.SetLimit(h.cfg.Concurrency)
	for _, j := range jobs {
		g.Go(func() error {
			if h.tooLate(ctx) {
				if j.msgID != "" {
					fail(j.msgID)
				}
				return nil
			}
			if err := h.run(ctx, j.r, j.w.DueMs); err != nil {
				again(j, err)
			}
			return nil
		})
	}
	_ = g.Wait() // failures are collected in resp
	return resp, nil
}

// streamGrace is how long a new PENDING request is left to its stream record
// before a sweep of the priority queue may take it.
const streamGrace = 5 * time.Second

// wakeAgain delays a wake-up sent again after a transient error.
const wakeAgain = time.Second

// queued is a request to run from the retry queue: the wake-up message that
// brought it (none when the sweep found it first) and the request as read.
type queued struct {
	msgID string
	w     wakeup
	r     store.Request
}

// sweep takes up to n due retries and scheduled requests from the
// priority-queue index, highest priority first, down to minPriority. A taken
// request whose wake-up is in the batch carries that message and leaves due.
// A failed index read only loses the ordering: the wake-ups still run.
func (h *Handler) sweep(ctx context.Context, n, minPriority int, due map[string]queued) []queued {
	var jobs []queued
	now := h.now()
	for p := store.MaxPriority; p >= minPriority && len(jobs) < n; p-- {
		rs, err := h.store.DueRequests(ctx, p, now, now.Add(-streamGrace), n-len(jobs))
		if err != nil {
			h.logger.WarnContext(ctx, "sweep the priority queue", "priority", p, "error", err)
			return jobs
		}
		for _, r := range rs {
			j := queued{w: wakeupFor(r, r.ProcessAfter, reasonRetry), r: r}
			if q, ok := due[r.RequestID]; ok {
				j.msgID, j.w = q.msgID, q.w
				delete(due, r.RequestID)
			}
			jobs = append(jobs, j)
		}
	}
	return jobs
}

// leftovers reads the requests of the wake-ups the sweep did not take and
// returns them in priority-queue order; a wake-up whose request cannot be
// read goes to again.
func (h *Handler) leftovers(ctx context.Context, due map[string]queued, again func(queued, error)) []queued {
	var jobs []queued
	for key, q := range due {
		r, err := h.store.RequestByKey(ctx, key)
		switch {
		case errors.Is(err, store.ErrNotFound):
			continue
		case err != nil:
			again(q, err)
			continue
		}
		q.r = r
		jobs = append(jobs, q)
	}
	slices.SortFunc(jobs, func(a, b queued) int {
		return cmp.Or(cmp.Compare(b.r.Priority, a.r.Priority), cmp.Compare(a.r.ProcessAfter, b.r.ProcessAfter), cmp.Compare(a.r.RequestID, b.r.RequestID))
	})
	return jobs
}
