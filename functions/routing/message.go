package routing

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/streamer-dev/streamer/functions/actions"
	"github.com/streamer-dev/streamer/functions/auth"
	"github.com/streamer-dev/streamer/functions/connections"
	"github.com/streamer-dev/streamer/functions/metrics"
	"github.com/streamer-dev/streamer/functions/protocol"
	"github.com/streamer-dev/streamer/functions/store"
)

// call is one message being answered.
type call struct {
	connID   string
	msg      protocol.Message
	conn     store.Connection
	notifier Notifier
	log      *slog.Logger
}

// message answers one $default message. Every outcome is a frame to the
// client; nothing is returned to API Gateway.
func (h *Handler) message(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest, log *slog.Logger) {
	start := h.now()
	c := &call{connID: ev.RequestContext.ConnectionID, notifier: h.notifierFor(ev), log: log}
	if ev.IsBase64Encoded {
		log.InfoContext(ctx, "binary frame refused")
		h.count(MetricMessages, DimAction, "invalid")
		h.fail(ctx, c, protocol.CodeValidation, "binary frames are not supported; send JSON text frames", nil)
		return
	}
	msg, err := protocol.Parse([]byte(ev.Body), h.cfg.MaxPayloadBytes)
	var ve *protocol.ValidationError
	if errors.As(err, &ve) {
		log.InfoContext(ctx, "invalid message", "reason", ve.Message)
		h.count(MetricMessages, DimAction, "invalid")
		h.sendError(ctx, c, ve.Frame())
		return
	}
	c.msg = msg
	c.log = log.With("action", msg.Action, "request_id", msg.ID)
	h.dispatch(ctx, c)
	h.observe(c, h.now().Sub(start))
}

// observe records a handled message: its count and latency by action. Names
// of unregistered actions are reported as "unknown", so clients cannot create
// metric dimensions.
func (h *Handler) observe(c *call, latency time.Duration) {
	action := c.msg.Action
	if _, ok := h.reg.Lookup(action); !ok && !actions.IsBuiltin(action) {
		action = "unknown"
	}
	c.log.Debug("message handled", "latency_ms", latency.Milliseconds())
	h.emit(map[string]string{DimAction: action},
		metrics.Metric{Name: MetricMessages, Unit: metrics.Count, Value: 1},
		metrics.Metric{Name: MetricLatency, Unit: metrics.Milliseconds, Value: float64(latency) / float64(time.Millisecond)})
}

// dispatch admits a valid message — the caller's connection and its rate
// limit — and routes it.
func (h *Handler) dispatch(ctx context.Context, c *call) {
	if h.submitReserved(ctx, c) {
		return
	}
	adm, err := h.admit(ctx, c.connID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.log.WarnContext(ctx, "message from an unknown connection")
		h.fail(ctx, c, protocol.CodeUnauthorized, "connection is not registered; reconnect", nil)
		return
	case err != nil:
		h.internal(ctx, c, "admit message", err)
		return
	}
	c.conn = adm.Connection
	c.log = c.log.With("tenant", c.conn.TenantID, "user_id", c.conn.UserID)
	if adm.RetryAfter > 0 {
		ms := max(1, adm.RetryAfter.Milliseconds())
		c.log.InfoContext(ctx, "rate limited", "retry_after_ms", ms)
		h.count(MetricRateLimited, DimScope, "connection")
		h.fail(ctx, c, protocol.CodeRateLimited, "too many messages; slow down", map[string]any{"retry_after_ms": ms})
		return
	}
	h.route(ctx, c)
}

// route runs an admitted message: a built-in action, or a registered action
// the caller may run, inline (sync) or queued (async).
func (h *Handler) route(ctx context.Context, c *call) {
	switch c.msg.Action {
	case "ping":
		h.ping(ctx, c)
		return
	case "subscribe":
		h.subscribe(ctx, c)
		return
	case "unsubscribe":
		h.unsubscribe(ctx, c)
		return
	case "status":
		h.status(ctx, c)
		return
	case "cancel":
		h.cancel(ctx, c)
		return
	}
	action, ok := h.reg.Lookup(c.msg.Action)
	if !ok {
		h.fail(ctx, c, protocol.CodeValidation, fmt.Sprintf("unknown action %q", c.msg.Action), nil)
		return
	}
	if !(auth.Identity{Permissions: c.conn.Permissions}).Allows(action.Name) {
		c.log.InfoContext(ctx, "action not permitted")
		h.fail(ctx, c, protocol.CodeUnauthorized, fmt.Sprintf("not permitted to run %q", action.Name), nil)
		return
	}
	if action.Options.Mode == actions.Sync {
		h.runSync(ctx, c, action)
		return
	}
	h.submit(ctx, c, action)
}

// send delivers a frame to a connection; failures are logged (a gone
// connection was already cleaned up by the notifier).
func (h *Handler) send(ctx context.Context, c *call, frame any) {
	err := c.notifier.Send(ctx, c.connID, frame)
	switch {
	case err == nil:
	case errors.Is(err, connections.ErrGone):
		c.log.InfoContext(ctx, "connection gone while answering")
	default:
		c.log.ErrorContext(ctx, "send frame", "error", err)
	}
}

// fail sends an error frame answering the current message.
func (h *Handler) fail(ctx context.Context, c *call, code, message string, details map[string]any) {
	h.sendError(ctx, c, protocol.Error{
		Type:      protocol.TypeError,
		RequestID: c.msg.ID,
		Error:     protocol.ErrorBody{Code: code, Message: message, Details: details},
	})
}

// sendError sends an error frame and counts it by code. Every error frame
// goes through here.
func (h *Handler) sendError(ctx context.Context, c *call, frame protocol.Error) {
	h.count(MetricErrors, DimCode, frame.Error.Code)
	h.send(ctx, c, frame)
}

// internal logs err and sends a generic INTERNAL_ERROR frame: clients never
// see internals.
func (h *Handler) internal(ctx context.Context, c *call, op string, err error) {
	c.log.ErrorContext(ctx, op, "error", err)
	h.fail(ctx, c, protocol.CodeInternal, "internal error; try again later", nil)
}

// respond sends a response frame answering the current message. A response
// too large for one frame is replaced by an error frame.
func (h *Handler) respond(ctx context.Context, c *call, success bool, data any) {
	resp := protocol.Response{Type: protocol.TypeResponse, RequestID: c.msg.ID, Success: success, Data: data}
	err := c.notifier.Send(ctx, c.connID, resp)
	switch {
	case err == nil:
	case errors.Is(err, connections.ErrTooLarge):
		c.log.WarnContext(ctx, "response too large", "error", err)
		h.fail(ctx, c, protocol.CodeInternal,
			fmt.Sprintf("the response exceeds the %d KB frame limit", connections.MaxFrameBytes>>10), nil)
	case errors.Is(err, connections.ErrGone):
		c.log.InfoContext(ctx, "connection gone while answering")
	default: // e.g. a result that does not marshal to JSON
		h.internal(ctx, c, "send response", err)
	}
}

// newID returns a random request id (a UUID v4).
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// Metadata keys the router reads from a message.
const (
	// MetaPriority is the request's priority, an integer 0..MaxPriority.
	MetaPriority = "priority"
	// MetaProcessAfter delays an async request: RFC 3339 time or epoch milliseconds.
	MetaProcessAfter = "process_after"
)

// schedule reads the priority and process_after metadata.
func (h *Handler) schedule(md map[string]string, now time.Time) (priority int, after time.Time, err error) {
	after = now
	if v, ok := md[MetaPriority]; ok {
		p, perr := strconv.Atoi(v)
		if perr != nil || p < 0 || p > MaxPriority {
			return 0, after, fmt.Errorf("metadata.priority must be an integer from 0 to %d", MaxPriority)
		}
		priority = p
	}
	if v, ok := md[MetaProcessAfter]; ok {
		t, perr := parseTime(v)
		if perr != nil {
			return 0, after, errors.New("metadata.process_after must be an RFC 3339 time or epoch milliseconds")
		}
		if limit := now.Add(h.cfg.RequestTTL / 2); t.After(limit) {
			return 0, after, fmt.Errorf("metadata.process_after is more than %s ahead", h.cfg.RequestTTL/2)
		}
		if t.After(now) {
			after = t
		}
	}
	return priority, after, nil
}

func parseTime(v string) (time.Time, error) {
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	return time.Parse(time.RFC3339Nano, v)
}

// rawJSON returns stored JSON text for embedding in a frame; nil when empty
// or not valid JSON (a frame must always marshal).
func rawJSON(s string) json.RawMessage {
	if s == "" || !json.Valid([]byte(s)) {
		return nil
	}
	return json.RawMessage(s)
}
