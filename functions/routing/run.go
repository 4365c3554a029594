package routing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/streamer-dev/streamer/functions/actions"
	"github.com/streamer-dev/streamer/functions/auth"
	"github.com/streamer-dev/streamer/functions/protocol"
	"github.com/streamer-dev/streamer/functions/store"
)

// runSync runs a sync action inline under its deadline and answers with a
// response frame, or TIMEOUT past the deadline. A handler that ignores its
// context is abandoned at the deadline; its late result is dropped.
func (h *Handler) runSync(ctx context.Context, c *call, action actions.Action) {
	timeout := min(action.Options.Timeout, h.cfg.SyncTimeout)
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if c.msg.ID == "" {
		c.msg.ID = newID()
	}
	id := c.msg.ID
	req := actions.Request{
		ID: id, Action: action.Name, TenantID: c.conn.TenantID, UserID: c.conn.UserID,
		ConnectionID: c.conn.ConnectionID, Payload: c.msg.Payload, Metadata: c.msg.Metadata, Attempt: 1,
	}
	type outcome struct {
		result any
		err    error
	}
	done := make(chan outcome, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- outcome{err: fmt.Errorf("panic: %v\n%s", p, debug.Stack())}
			}
		}()
		res, err := action.Handler(runCtx, req, &syncReporter{h: h, ctx: runCtx, call: c, requestID: id})
		done <- outcome{res, err}
	}()
	var out outcome
	select {
	case out = <-done:
	case <-runCtx.Done():
		out = outcome{err: runCtx.Err()}
	}
	var ue *actions.UserError
	switch {
	case out.err == nil:
		h.respond(ctx, c, true, out.result)
	case errors.As(out.err, &ue):
		code := ue.Code
		if code == "" {
			code = protocol.CodeValidation
		}
		h.fail(ctx, c, code, ue.Message, nil)
	case errors.Is(out.err, context.DeadlineExceeded) && runCtx.Err() != nil:
		c.log.WarnContext(ctx, "sync action timed out", "timeout", timeout.String())
		h.fail(ctx, c, protocol.CodeTimeout, fmt.Sprintf("%s did not finish within %s", action.Name, timeout), nil)
	default:
		h.internal(ctx, c, "sync action failed", out.err)
	}
}

// syncReporter sends a sync action's progress straight to the caller. Sync
// actions have no stored state, so Checkpoint only validates its argument.
type syncReporter struct {
	h         *Handler
	ctx       context.Context
	call      *call
	requestID string
}

func (r *syncReporter) Report(percent float64, message string, metadata map[string]any) {
	if r.ctx.Err() != nil {
		return // the caller already got the answer (TIMEOUT)
	}
	r.h.send(r.ctx, r.call, protocol.Progress{
		Type: protocol.TypeProgress, RequestID: r.requestID, Percentage: min(max(percent, 0), 100), Message: message, Metadata: metadata,
	})
}

func (r *syncReporter) Checkpoint(state any) error {
	if _, err := json.Marshal(state); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// submit stores an async request — PENDING, counted against the tenant's
// in-flight cap, followed by the caller — and only then acknowledges it.
// A duplicate id of the same tenant starts no work: the caller gets the
// existing request's acknowledgment, or its final frame when it is finished.
func (h *Handler) submit(ctx context.Context, c *call, action actions.Action) {
	req, err := h.newRequest(c, action)
	if err != nil {
		h.fail(ctx, c, protocol.CodeValidation, err.Error(), nil)
		return
	}
	existing, created, err := h.store.CreateRequest(ctx, req, h.cfg.TenantMaxInflight)
	switch {
	case errors.Is(err, store.ErrTenantInflightLimit):
		c.log.WarnContext(ctx, "tenant in-flight limit", "limit", h.cfg.TenantMaxInflight)
		h.count(MetricRateLimited, DimScope, "tenant")
		h.sendError(ctx, c, protocol.Error{Type: protocol.TypeError, RequestID: req.ID, Error: protocol.ErrorBody{
			Code: protocol.CodeRateLimited, Message: fmt.Sprintf("the tenant has %d unfinished requests, the limit; retry later", h.cfg.TenantMaxInflight),
			Details: map[string]any{"retry_after_ms": 1000},
		}})
	case err != nil:
		h.internal(ctx, c, "store request", err)
	case created:
		h.acknowledge(ctx, c, req)
	default:
		h.duplicate(ctx, c, action, existing)
	}
}

// submitReserved is the hot path of an async request from a connection the
// rate limiter's cache admits: the rate-limit write joins the request's
// transaction, saving a round trip. It reports false — having sent nothing —
// whenever the ordinary path must decide: a stale cache, a duplicate id, a
// limit, an invalid message or an error.
func (h *Handler) submitReserved(ctx context.Context, c *call) bool {
	if h.limiter == nil {
		return false
	}
	action, ok := h.reg.Lookup(c.msg.Action)
	if !ok || action.Options.Mode != actions.Async {
		return false
	}
	res, ok := h.limiter.Reserve(c.connID)
	if !ok || !(auth.Identity{Permissions: res.Connection.Permissions}).Allows(action.Name) {
		return false
	}
	c.conn = res.Connection
	req, err := h.newRequest(c, action)
	if err != nil {
		return false
	}
	if _, created, err := h.store.CreateRequest(ctx, req, h.cfg.TenantMaxInflight, res.Tx...); err != nil || !created {
		return false
	}
	res.Commit()
	c.log = c.log.With("tenant", c.conn.TenantID, "user_id", c.conn.UserID)
	h.acknowledge(ctx, c, req)
	return true
}

// newRequest builds the PENDING request for the current message, giving the
// message an id when it has none.
func (h *Handler) newRequest(c *call, action actions.Action) (store.Request, error) {
	now := h.now()
	priority, after, err := h.schedule(c.msg.Metadata, now)
	if err != nil {
		return store.Request{}, err
	}
	if c.msg.ID == "" {
		c.msg.ID = newID()
		c.log = c.log.With("request_id", c.msg.ID)
	}
	payload := "{}"
	if len(c.msg.Payload) > 0 {
		payload = string(c.msg.Payload)
	}
	req := store.Request{
		RequestID: store.RequestKey(c.conn.TenantID, c.msg.ID), ID: c.msg.ID,
		ConnectionID: c.conn.ConnectionID, TenantID: c.conn.TenantID, UserID: c.conn.UserID,
		Status: store.StatusPending, CreatedAt: now.UnixMilli(), Action: action.Name,
		Payload: payload, Metadata: c.msg.Metadata, Priority: priority, ProcessAfter: after.UnixMilli(),
		TTL: now.Add(h.cfg.RequestTTL).Unix(),
	}
	return req, nil
}

// acknowledge tells the caller its request is stored and queued.
func (h *Handler) acknowledge(ctx context.Context, c *call, req store.Request) {
	c.log.InfoContext(ctx, "request queued", "priority", req.Priority, "process_after", req.ProcessAfter)
	ack := protocol.Acknowledgment{Type: protocol.TypeAcknowledgment, RequestID: req.ID, Status: "queued"}
	if req.ProcessAfter > req.CreatedAt {
		ack.Message = "scheduled for " + time.UnixMilli(req.ProcessAfter).UTC().Format("2006-01-02T15:04:05.000Z07:00")
	}
	h.send(ctx, c, ack)
}

// duplicate answers a request whose id the tenant already used.
func (h *Handler) duplicate(ctx context.Context, c *call, action actions.Action, existing store.Request) {
	c.log.InfoContext(ctx, "duplicate request id", "status", string(existing.Status))
	if existing.Action != action.Name {
		h.sendError(ctx, c, protocol.Error{Type: protocol.TypeError, RequestID: existing.ID, Error: protocol.ErrorBody{
			Code: protocol.CodeValidation, Message: fmt.Sprintf("id %q is already used by a %q request", existing.ID, existing.Action),
		}})
		return
	}
	if existing.Status.Final() {
		h.send(ctx, c, completeFrame(existing))
		return
	}
	// A client that resubmits after reconnecting follows the request again.
	latest, err := h.follow(ctx, c, existing, nil)
	if err != nil {
		h.internal(ctx, c, "subscribe duplicate", err)
		return
	}
	if latest.Status.Final() {
		h.send(ctx, c, completeFrame(latest))
		return
	}
	h.send(ctx, c, protocol.Acknowledgment{
		Type: protocol.TypeAcknowledgment, RequestID: latest.ID, Status: "queued",
		Message: "duplicate id: the request is already " + string(latest.Status),
	})
}

// completeFrame is the final frame of a finished request.
func completeFrame(r store.Request) protocol.Complete {
	f := protocol.Complete{Type: protocol.TypeComplete, RequestID: r.ID, Success: r.Status == store.StatusCompleted}
	if f.Success {
		f.Result = rawJSON(r.Result)
	} else if r.Error != nil {
		f.Error = &protocol.ErrorBody{Code: r.Error.Code, Message: r.Error.Message}
	}
	return f
}
