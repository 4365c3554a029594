package routing

import (
	"context"
	"errors"
	"fmt"

	"github.com/streamer-dev/streamer/functions/notify"
	"github.com/streamer-dev/streamer/functions/protocol"
	"github.com/streamer-dev/streamer/functions/store"
)

// ping records the heartbeat (LastPing, TTL) and answers with a pong.
func (h *Handler) ping(ctx context.Context, c *call) {
	if err := h.store.TouchConnection(ctx, c.conn.ConnectionID, h.cfg.ConnectionTTL); err != nil && !errors.Is(err, store.ErrNotFound) {
		h.internal(ctx, c, "ping", err)
		return
	}
	h.send(ctx, c, protocol.Pong{Type: protocol.TypePong, RequestID: c.msg.ID})
}

// target parses the request a built-in action names and reads it within the
// caller's tenant. It answers the message itself on failure.
func (h *Handler) target(ctx context.Context, c *call) (protocol.Target, store.Request, bool) {
	t, err := protocol.ParseTarget(c.msg.ID, c.msg.Payload)
	var ve *protocol.ValidationError
	if errors.As(err, &ve) {
		h.sendError(ctx, c, ve.Frame())
		return t, store.Request{}, false
	}
	r, err := h.store.GetRequest(ctx, c.conn.TenantID, t.RequestID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		h.fail(ctx, c, protocol.CodeNotFound, fmt.Sprintf("no request %q", t.RequestID), nil)
		return t, r, false
	case err != nil:
		h.internal(ctx, c, "read request", err)
		return t, r, false
	}
	return t, r, true
}

// subscribe follows a request of the caller's tenant. A finished request's
// final frame is sent at once (and no subscription is stored).
func (h *Handler) subscribe(ctx context.Context, c *call) {
	t, r, ok := h.target(ctx, c)
	if !ok {
		return
	}
	if r.Status.Final() {
		h.respond(ctx, c, true, map[string]any{"request_id": r.ID, "status": r.Status})
		h.send(ctx, c, completeFrame(r))
		return
	}
	r, err := h.follow(ctx, c, r, t.EventTypes)
	if err != nil {
		h.internal(ctx, c, "subscribe", err)
		return
	}
	data := map[string]any{"request_id": r.ID, "status": r.Status, "subscribed": true}
	if len(t.EventTypes) > 0 {
		data["event_types"] = t.EventTypes
	}
	h.respond(ctx, c, true, data)
	if sub := (store.Subscription{EventTypes: t.EventTypes}); r.Status.Final() && sub.Wants(protocol.EventComplete) {
		h.send(ctx, c, completeFrame(r))
	}
}

// follow subscribes the caller to r and returns r as stored afterwards. A
// request that finished meanwhile may have broadcast its final frame before
// the subscription existed; the caller sends it when the result is final (a
// subscriber may then see the final frame twice, never zero times).
func (h *Handler) follow(ctx context.Context, c *call, r store.Request, eventTypes []string) (store.Request, error) {
	now := h.now()
	sub := store.Subscription{ConnectionID: c.conn.ConnectionID, RequestID: r.RequestID, TenantID: r.TenantID,
		EventTypes: eventTypes, CreatedAt: now.UnixMilli(), TTL: now.Add(h.cfg.ConnectionTTL).Unix()}
	if err := h.store.PutSubscription(ctx, sub); err != nil {
		return r, err
	}
	return h.store.GetRequest(ctx, r.TenantID, r.ID)
}

// unsubscribe stops following a request; unsubscribing twice is not an error.
func (h *Handler) unsubscribe(ctx context.Context, c *call) {
	_, r, ok := h.target(ctx, c)
	if !ok {
		return
	}
	if _, err := h.store.DeleteSubscription(ctx, c.conn.ConnectionID, r.RequestID); err != nil {
		h.internal(ctx, c, "unsubscribe", err)
		return
	}
	if r.ConnectionID == c.conn.ConnectionID && !r.SubmitterUnsubscribed {
		if _, err := h.store.UnsubscribeSubmitter(ctx, r.RequestID, c.conn.ConnectionID); err != nil {
			h.internal(ctx, c, "unsubscribe", err)
			return
		}
	}
	h.respond(ctx, c, true, map[string]any{"request_id": r.ID, "subscribed": false})
}

func statusOf(r store.Request) protocol.StatusData {
	s := protocol.StatusData{
		RequestID: r.ID, Action: r.Action, Status: string(r.Status), Progress: r.Progress, ProgressMessage: r.ProgressMessage,
		Checkpoint: rawJSON(r.Checkpoint), Result: rawJSON(r.Result), Attempt: r.Attempt, RetryCount: r.RetryCount,
		Priority: r.Priority, CreatedAt: r.CreatedAt, ProcessAfter: r.ProcessAfter, ProcessedAt: r.ProcessedAt,
	}
	if r.Error != nil {
		s.Error = &protocol.ErrorBody{Code: r.Error.Code, Message: r.Error.Message}
	}
	return s
}

// status reports a request of the caller's tenant.
func (h *Handler) status(ctx context.Context, c *call) {
	if _, r, ok := h.target(ctx, c); ok {
		h.respond(ctx, c, true, statusOf(r))
	}
}

// cancel moves a request to CANCELLED and tells its subscribers with a failed
// complete frame; a running handler sees its context cancelled (the processor
// watches the status).
func (h *Handler) cancel(ctx context.Context, c *call) {
	t, err := protocol.ParseTarget(c.msg.ID, c.msg.Payload)
	var ve *protocol.ValidationError
	if errors.As(err, &ve) {
		h.sendError(ctx, c, ve.Frame())
		return
	}
	r, err := h.store.CancelRequest(ctx, c.conn.TenantID, t.RequestID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		h.fail(ctx, c, protocol.CodeNotFound, fmt.Sprintf("no request %q", t.RequestID), nil)
		return
	case errors.Is(err, store.ErrFinal):
		h.fail(ctx, c, protocol.CodeValidation, fmt.Sprintf("request %q is already %s", t.RequestID, r.Status), nil)
		return
	case err != nil:
		h.internal(ctx, c, "cancel", err)
		return
	}
	c.log.InfoContext(ctx, "request cancelled", "target", t.RequestID)
	h.respond(ctx, c, true, map[string]any{"request_id": r.ID, "status": r.Status})
	if _, err := c.notifier.Broadcast(ctx, notify.AudienceOf(r), protocol.EventComplete, completeFrame(r)); err != nil {
		c.log.WarnContext(ctx, "broadcast cancellation", "error", err)
	}
}
