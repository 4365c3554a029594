package processing

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/streamer-dev/streamer/functions/actions"
	"github.com/streamer-dev/streamer/functions/connections"
	"github.com/streamer-dev/streamer/functions/metrics"
	"github.com/streamer-dev/streamer/functions/notify"
	"github.com/streamer-dev/streamer/functions/progress"
	"github.com/streamer-dev/streamer/functions/protocol"
	"github.com/streamer-dev/streamer/functions/store"
)

// CodeResultTooLarge is the error code of a complete frame whose result does
// not fit in a WebSocket frame (the request is COMPLETED; its result is
// stored), and of a request failed because its result does not fit in the item.
const CodeResultTooLarge = "RESULT_TOO_LARGE"

// Outcomes of a run, the Outcome dimension of the Outcomes metric.
const (
	outcomeCompleted = "completed"
	outcomeFailed    = "failed"
	outcomeRetried   = "retried"
	outcomeLost      = "lease_lost" // cancelled or reclaimed while running
)

// newOwner returns a unique lease owner for one run.
func newOwner() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// run claims r and runs its action. wakeDue is the due time of the retry-queue
// wake-up that triggered it, 0 for a stream record. A nil error means the
// delivery is done with (run, or nothing to do); an error asks for redelivery.
func (h *Handler) run(ctx context.Context, r store.Request, wakeDue int64) error {
	now := h.now()
	if wakeDue != 0 && !claimable(r, now) {
		return nil // final, not yet due (another wake-up owns that time) or leased
	}
	action, known := h.reg.Lookup(r.Action)
	timeout := action.Options.Timeout
	if !known {
		timeout = time.Second
	}
	runEnd := now.Add(timeout)
	if last := h.deadline(ctx).Add(-h.cfg.SafetyMargin); last.Before(runEnd) {
		runEnd = last
	}
	leaseUntil := runEnd.Add(h.cfg.LeaseGrace)
	owner := newOwner()
	// The watchdog goes first: if this run dies after the claim, it reclaims
	// the request once the lease has expired. A lost claim leaves it harmless.
	if err := h.enqueue(ctx, wakeupFor(r, leaseUntil.Add(time.Second).UnixMilli(), reasonLease)); err != nil {
		return err
	}
	// Claiming again with the same owner is safe: an attempt that DynamoDB
	// applied although its answer was lost shows as this owner's lease.
	var (
		got     store.Request
		claimed bool
	)
	if err := h.persist(ctx, func() (err error) {
		got, claimed, err = h.store.Claim(ctx, r.RequestID, owner, leaseUntil)
		return err
	}); err != nil {
		return err
	}
	if !claimed {
		h.logger.DebugContext(ctx, "claim lost", "request_key", r.RequestID, "status", got.Status)
		return nil
	}
	r = got
	logger := h.logger.With("request_id", r.ID, "tenant", r.TenantID, "attempt", r.Attempt, "action", r.Action)
	o := &outcome{h: h, r: r, owner: owner, logger: logger, policy: action.Options.Retry}
	switch {
	case !known:
		return o.fail(ctx, store.ErrorInfo{Code: protocol.CodeValidation, Message: fmt.Sprintf("unknown action %q", r.Action)}, "unknown action")
	case r.Attempt > action.Options.Retry.MaxAttempts:
		// Reclaimed after runs that never reported back (crashes, lost leases).
		return o.fail(ctx, store.ErrorInfo{Code: protocol.CodeInternal, Message: fmt.Sprintf("the action did not finish in %d attempts", r.Attempt-1)},
			"attempts exhausted by expired leases")
	}
	logger.InfoContext(ctx, "run", "timeout", runEnd.Sub(now).String())
	return o.execute(ctx, action, runEnd)
}

// claimable reports whether a wake-up should try to claim r: it is waiting and
// due, or running on an expired lease.
func claimable(r store.Request, now time.Time) bool {
	ms := now.UnixMilli()
	switch r.Status {
	case store.StatusPending, store.StatusRetrying:
		return r.ProcessAfter <= ms
	case store.StatusProcessing:
		return r.LeaseExpiresAt < ms
	}
	return false
}

// outcome carries one claimed run to its end.
type outcome struct {
	h      *Handler
	r      store.Request
	owner  string
	logger *slog.Logger
	policy actions.RetryPolicy
	rep    *progress.Reporter
}

// execute runs the handler with a reporter and a cancel watcher, then records
// the outcome.
func (o *outcome) execute(ctx context.Context, action actions.Action, runEnd time.Time) error {
	h, r := o.h, o.r
	hctx, cancel := context.WithDeadline(ctx, runEnd)
	defer cancel()
	o.rep = progress.New(ctx, h.cfg.Progress, progress.Run{Key: r.RequestID, Submitter: r.Submitter(), ID: r.ID, Owner: o.owner}, h.notify, h.store, o.logger)
	o.rep.Resume(store.Progress{Percent: r.Progress, Message: r.ProgressMessage, Checkpoint: r.Checkpoint})
	lost, stopWatch := h.watch(ctx, r.RequestID, o.owner, cancel)

	req := actions.Request{ID: r.ID, Action: r.Action, TenantID: r.TenantID, UserID: r.UserID, ConnectionID: r.ConnectionID,
		Payload: json.RawMessage(r.Payload), Metadata: r.Metadata, Attempt: r.Attempt}
	if r.Payload == "" {
		req.Payload = nil
	}
	if r.Checkpoint != "" {
		req.Checkpoint = json.RawMessage(r.Checkpoint)
	}
	span := h.cfg.Tracer.Start(ctx, "handler "+r.Action)
	span.Annotate("request_id", r.ID)
	span.Annotate("tenant", r.TenantID)
	span.Annotate("action", r.Action)
	span.Annotate("attempt", r.Attempt)
	start := time.Now()
	result, err := call(hctx, action.Handler, req, o.rep)
	elapsed := time.Since(start)
	span.End(err)
	timedOut := errors.Is(hctx.Err(), context.DeadlineExceeded)
	stopWatch()
	dims := map[string]string{"Action": r.Action}
	o.emit(dims, metrics.Metric{Name: "ProcessingTime", Unit: metrics.Milliseconds, Value: float64(elapsed) / float64(time.Millisecond)})

	switch {
	case lost() || o.rep.LeaseLost():
		return o.lost(ctx)
	case err != nil && timedOut:
		return o.retryOrFail(ctx, store.ErrorInfo{Code: protocol.CodeTimeout, Message: fmt.Sprintf("the action did not finish within %s", runEnd.Sub(start).Round(time.Millisecond))},
			fmt.Errorf("timed out: %w", err))
	case err != nil:
		info := clientError(err)
		if actions.IsPermanent(err) {
			return o.fail(ctx, info, err.Error())
		}
		return o.retryOrFail(ctx, info, err)
	}
	return o.complete(ctx, result)
}

// call runs the handler, turning a panic into an error.
func call(ctx context.Context, fn actions.Handler, req actions.Request, rep actions.Reporter) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return fn(ctx, req, rep)
}

// clientError is what the client sees of err: a UserError as it is, anything
// else as a generic internal error (its text goes to the logs).
func clientError(err error) store.ErrorInfo {
	var ue *actions.UserError
	if errors.As(err, &ue) {
		return store.ErrorInfo{Code: ue.Code, Message: ue.Message}
	}
	return store.ErrorInfo{Code: protocol.CodeInternal, Message: "the action failed"}
}

// watch polls the request every CancelPoll while the handler runs; when the
// run no longer owns it (cancelled, reclaimed) it calls cancel. lost reports
// whether that happened; stop ends the watch.
func (h *Handler) watch(ctx context.Context, key, owner string, cancel context.CancelFunc) (lost func() bool, stop func()) {
	var (
		mu      sync.Mutex
		gone    bool
		wg      sync.WaitGroup
		stopped = make(chan struct{})
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(h.cfg.CancelPoll)
		defer t.Stop()
		for {
			select {
			case <-stopped:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			owned, err := h.store.Owned(ctx, key, owner)
			if err != nil {
				h.logger.WarnContext(ctx, "check for cancel", "request_key", key, "error", err)
				continue
			}
			if !owned {
				mu.Lock()
				gone = true
				mu.Unlock()
				cancel()
				return
			}
		}
	}()
	var once sync.Once
	return func() bool {
			mu.Lock()
			defer mu.Unlock()
			return gone
		}, func() {
			once.Do(func() { close(stopped) })
			wg.Wait()
		}
}

func (o *outcome) emit(dims map[string]string, ms ...metrics.Metric) {
	if err := o.h.metrics.Emit(dims, ms...); err != nil {
		o.logger.Warn("emit metrics", "error", err)
	}
}

// finish closes the reporter (a run that failed before its handler started
// has none) and counts the outcome and the frames it sent.
func (o *outcome) finish(persist bool, result string, extra ...metrics.Metric) {
	o.closeReporter(persist)
	var frames int
	if o.rep != nil {
		frames, _ = o.rep.Stats()
	}
	o.emit(map[string]string{"Action": o.r.Action},
		append(extra, metrics.Metric{Name: "ProgressFramesSent", Unit: metrics.Count, Value: float64(frames)})...)
	o.emit(map[string]string{"Action": o.r.Action, "Outcome": result}, metrics.Metric{Name: "Outcomes", Unit: metrics.Count, Value: 1})
}

// closeReporter stops the reporter (once; later calls do nothing), flushing
// its last frame and, with persist, its last progress and checkpoint.
func (o *outcome) closeReporter(persist bool) {
	if o.rep != nil {
		o.rep.Close(persist)
	}
}

// lost ends a run whose lease is gone: the request was cancelled (the router
// sent the complete frame) or reclaimed. Nothing is written.
func (o *outcome) lost(_ context.Context) error {
	o.logger.Info("run ended: lease lost (cancelled or reclaimed)")
	o.finish(false, outcomeLost)
	return nil
}

// complete stores the result and tells the subscribers.
func (o *outcome) complete(ctx context.Context, result any) error {
	b, err := json.Marshal(result)
	if err != nil {
		return o.fail(ctx, store.ErrorInfo{Code: protocol.CodeInternal, Message: "the action's result is not JSON"}, err.Error())
	}
	o.closeReporter(false) // pending progress goes out before the complete frame
	switch err := o.h.persist(ctx, func() error { return o.h.store.Complete(ctx, o.r, o.owner, string(b)) }); {
	case errors.Is(err, store.ErrResultTooLarge):
		return o.fail(ctx, store.ErrorInfo{Code: CodeResultTooLarge,
			Message: fmt.Sprintf("the result of %d bytes exceeds the %d-byte storage limit", len(b), store.MaxResultBytes)}, "result too large")
	case errors.Is(err, store.ErrLeaseLost):
		return o.lost(ctx)
	case err != nil:
		o.finish(false, outcomeLost)
		return err // the lease watchdog reruns it
	}
	o.finish(false, outcomeCompleted)
	frame := protocol.Complete{Type: protocol.TypeComplete, RequestID: o.r.ID, Success: true, Result: b}
	if size := len(b) + 200; size > connections.MaxFrameBytes {
		frame.Result = nil
		frame.Error = &protocol.ErrorBody{Code: CodeResultTooLarge,
			Message: "the result is too large for a WebSocket frame; read it with the status action",
			Details: map[string]any{"result_bytes": len(b)}}
	}
	o.broadcast(ctx, frame)
	o.logger.InfoContext(ctx, "completed")
	return nil
}

func (o *outcome) broadcast(ctx context.Context, frame protocol.Complete) {
	if _, err := o.h.notify.Broadcast(ctx, notify.AudienceOf(o.r), protocol.EventComplete, frame); err != nil {
		o.logger.WarnContext(ctx, "send complete", "error", err)
	}
}

// retryOrFail schedules another attempt, or fails the request after the last.
func (o *outcome) retryOrFail(ctx context.Context, info store.ErrorInfo, cause error) error {
	if o.r.Attempt >= o.policy.MaxAttempts {
		return o.fail(ctx, info, cause.Error())
	}
	o.closeReporter(true) // the next attempt resumes from the last checkpoint
	delay := time.Duration(mrand.Int64N(int64(o.policy.Backoff(o.r.Attempt)) + 1))
	due := o.h.now().Add(delay)
	// The wake-up goes first, so a crash before the status write never strands
	// the request (the watchdog or this wake-up reclaims it).
	if err := o.h.enqueue(ctx, wakeupFor(o.r, due.UnixMilli(), reasonRetry)); err != nil {
		return err
	}
	switch err := o.h.persist(ctx, func() error { return o.h.store.ScheduleRetry(ctx, o.r.RequestID, o.owner, due, info) }); {
	case errors.Is(err, store.ErrLeaseLost):
		return o.lost(ctx)
	case err != nil:
		return err
	}
	o.logger.WarnContext(ctx, "attempt failed; retry scheduled", "error", cause, "code", info.Code, "retry_in", delay.String())
	o.finish(false, outcomeRetried, metrics.Metric{Name: "Retries", Unit: metrics.Count, Value: 1})
	return nil
}

// fail moves the request to FAILED, tells the subscribers and dead-letters it.
func (o *outcome) fail(ctx context.Context, info store.ErrorInfo, cause string) error {
	o.closeReporter(false)
	switch err := o.h.persist(ctx, func() error { return o.h.store.Fail(ctx, o.r, o.owner, info) }); {
	case errors.Is(err, store.ErrLeaseLost):
		return o.lost(ctx)
	case err != nil:
		o.finish(false, outcomeLost)
		return err // the lease watchdog reruns it
	}
	o.finish(false, outcomeFailed, metrics.Metric{Name: "DeadLettered", Unit: metrics.Count, Value: 1})
	o.broadcast(ctx, protocol.Complete{Type: protocol.TypeComplete, RequestID: o.r.ID, Success: false,
		Error: &protocol.ErrorBody{Code: info.Code, Message: info.Message}})
	err := o.h.deadLetter(ctx, deadLetter{RequestID: o.r.ID, RequestKey: o.r.RequestID, Action: o.r.Action, Tenant: o.r.TenantID,
		Attempts: o.r.Attempt, LastError: cause, Code: info.Code, FailedAt: o.h.now().UnixMilli()})
	if err != nil {
		o.logger.ErrorContext(ctx, "dead-letter failed request", "error", err)
	}
	o.logger.ErrorContext(ctx, "request failed", "code", info.Code, "error", cause)
	return nil
}
