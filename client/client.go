// Package client is the Go client of Streamer's WebSocket protocol.
//
// Dial connects with a token; the client then keeps the connection alive with
// the protocol's ping action (API Gateway closes a connection idle for 10
// minutes), reconnects with exponential backoff and jitter when the connection
// drops, and proactively before API Gateway's 2-hour connection cap. After a
// reconnect it sends every unfinished call again with its id: the id is the
// idempotency key, so an async request is not run twice and the server follows
// it from the new connection (progress and the final result arrive there).
//
//	c, err := client.Dial(ctx, "ws://127.0.0.1:8080/", token, nil)
//	res, err := c.Request(ctx, "delay", map[string]any{"seconds": 3}, func(p client.Progress) {
//		fmt.Printf("%.0f%% %s\n", p.Percentage, p.Message)
//	})
package client

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/streamer-dev/streamer/functions/protocol"
)

// Defaults of Options.
const (
	// DefaultPingInterval keeps a connection inside API Gateway's 10-minute
	// idle timeout.
	DefaultPingInterval = 5 * time.Minute
	// DefaultMaxConnectionAge reconnects before API Gateway's 2-hour cap.
	DefaultMaxConnectionAge = 110 * time.Minute
	// DefaultMinBackoff and DefaultMaxBackoff bound the reconnect delay.
	DefaultMinBackoff = 200 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
)

// maxMessageBytes is API Gateway's frame size limit (the server's frames are
// as large at most).
const maxMessageBytes = 128 * 1024

// Options tune a Client; nil or zero values take the defaults.
type Options struct {
	// PingInterval is how often an idle connection sends a ping action.
	PingInterval time.Duration
	// MaxConnectionAge is when a connection is replaced by a new one.
	MaxConnectionAge time.Duration
	// MinBackoff and MaxBackoff bound the delay between reconnect attempts
	// (exponential, with full jitter).
	MinBackoff, MaxBackoff time.Duration
	// Token, when set, is called for the token of each reconnect (tokens
	// expire); the token given to Dial is used otherwise.
	Token func(ctx context.Context) (string, error)
	// Header is sent with every handshake.
	Header http.Header
	// Logger receives reconnects. Default: discarded.
	Logger *slog.Logger
}

func (o *Options) withDefaults() Options {
	var out Options
	if o != nil {
		out = *o
	}
	if out.PingInterval <= 0 {
		out.PingInterval = DefaultPingInterval
	}
	if out.MaxConnectionAge <= 0 {
		out.MaxConnectionAge = DefaultMaxConnectionAge
	}
	if out.MinBackoff <= 0 {
		out.MinBackoff = DefaultMinBackoff
	}
	if out.MaxBackoff <= 0 {
		out.MaxBackoff = DefaultMaxBackoff
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	return out
}

// Error is an error the server reported: an error frame or a failed
// completion. Use errors.As to read the protocol's code.
type Error struct {
	// RequestID is the id of the request the error is about.
	RequestID string
	// Code is the protocol error code (protocol.CodeValidation, ...).
	Code string
	// Message is the server's explanation.
	Message string
	// Details are extra facts (limits, retry-after).
	Details map[string]any
}

func (e *Error) Error() string {
	if e.RequestID != "" {
		return fmt.Sprintf("streamer: request %s: %s: %s", e.RequestID, e.Code, e.Message)
	}
	return fmt.Sprintf("streamer: %s: %s", e.Code, e.Message)
}

// HandshakeError is a refused connection: the $connect handler answered
// StatusCode (401 for a missing, bad or expired token).
type HandshakeError struct {
	StatusCode int
	Err        error
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("streamer: connection refused with HTTP %d", e.StatusCode)
}

func (e *HandshakeError) Unwrap() error { return e.Err }

// ErrClosed is returned by calls on a closed Client, and to calls still
// waiting when it is closed.
var ErrClosed = errors.New("streamer: client closed")

// Progress is a progress report of an async request.
type Progress struct {
	RequestID  string
	Percentage float64
	Message    string
	Metadata   map[string]any
}

// RequestStatus is the answer of the status action.
type RequestStatus = protocol.StatusData

// frame is any server frame; Type says which fields are set.
type frame struct {
	Type       string              `json:"type"`
	RequestID  string              `json:"request_id"`
	Status     string              `json:"status"`
	Success    bool                `json:"success"`
	Data       json.RawMessage     `json:"data"`
	Result     json.RawMessage     `json:"result"`
	Percentage float64             `json:"percentage"`
	Message    string              `json:"message"`
	Metadata   map[string]any      `json:"metadata"`
	Error      *protocol.ErrorBody `json:"error"`
}

// call is a message waiting for its answer. Frames with its id go to frames.
type call struct {
	id     string
	msg    []byte
	frames chan frame
}

// Client is a connection to Streamer that survives reconnects. Its methods
// are safe for concurrent use.
type Client struct {
	url    string
	token  string
	opts   Options
	ctx    context.Context // lives until Close
	cancel context.CancelFunc

	mu    sync.Mutex
	ws    *websocket.Conn
	ready chan struct{} // closed while a connection is up
	calls map[string]*call
	err   error // why the client stopped, when it did
	// reconnects counts replaced connections.
	reconnects int

	done chan struct{}
}

// Dial connects to the WebSocket endpoint url with token (sent as the token
// query parameter, which browsers and API Gateway both support).
func Dial(ctx context.Context, rawURL, token string, opts *Options) (*Client, error) {
	o := opts.withDefaults()
	c := &Client{url: rawURL, token: token, opts: o, calls: map[string]*call{}, done: make(chan struct{})}
	ws, err := c.dial(ctx, token)
	if err != nil {
		return nil, err
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.ws, c.ready = ws, make(chan struct{})
	close(c.ready)
	go c.run(ws)
	return c, nil
}

func (c *Client) dial(ctx context.Context, token string) (*websocket.Conn, error) {
	u, err := url.Parse(c.url)
	if err != nil {
		return nil, fmt.Errorf("streamer: url: %w", err)
	}
	q := u.Query()
	q.Set("token", token)
	u.RawQuery = q.Encode()
	ws, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{HTTPHeader: c.opts.Header})
	if err != nil {
		err = hideToken(err, q.Get("token"))
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, &HandshakeError{StatusCode: resp.StatusCode, Err: err}
		}
		return nil, fmt.Errorf("streamer: dial: %w", err)
	}
	ws.SetReadLimit(maxMessageBytes)
	return ws, nil
}

// hideToken takes token out of a dial error: a request that failed before
// the handshake (no server, say) quotes its URL, token included, and the
// error is logged (reconnects) and returned. The *url.Error it wraps is
// redacted too.
func hideToken(err error, token string) error {
	if token == "" {
		return err
	}
	hide := strings.NewReplacer(url.QueryEscape(token), "REDACTED", token, "REDACTED").Replace
	text := hide(err.Error())
	if text == err.Error() {
		return err
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = hide(ue.URL)
	}
	return &tokenHiddenError{err: err, text: text}
}

// tokenHiddenError is a dial error whose text no longer holds the token.
type tokenHiddenError struct {
	err  error
	text string
}

// Error is the redacted text.
func (e *tokenHiddenError) Error() string { return e.text }

// Unwrap returns the dial error.
func (e *tokenHiddenError) Unwrap() error { return e.err }

// run owns the connection: it reads frames, pings, and replaces the
// connection when it drops or grows old, until Close.
func (c *Client) run(ws *websocket.Conn) {
	defer close(c.done)
	for {
		age := time.NewTimer(c.opts.MaxConnectionAge)
		readErr, dead := make(chan error, 1), make(chan struct{})
		go func() {
			readErr <- c.read(ws)
			close(dead)
		}()
		go c.keepAlive(ws, dead)
		var err error
		select {
		case <-c.ctx.Done():
			age.Stop()
			_ = ws.Close(websocket.StatusNormalClosure, "")
			c.stop(ErrClosed)
			return
		case err = <-readErr:
			c.opts.Logger.Info("streamer: connection lost", "error", err)
		case <-age.C:
			c.opts.Logger.Info("streamer: replacing a connection before the 2-hour cap")
		}
		age.Stop()
		c.mu.Lock()
		c.ready = make(chan struct{})
		c.mu.Unlock()
		old := ws
		ws, err = c.reconnect()
		// The old connection closes after the new one is up, so frames it
		// still carries are not lost.
		go func() { _ = old.Close(websocket.StatusNormalClosure, "reconnect") }()
		if err != nil {
			c.stop(err)
			return
		}
		c.mu.Lock()
		c.ws = ws
		c.reconnects++
		close(c.ready)
		pending := make([]*call, 0, len(c.calls))
		for _, cl := range c.calls {
			pending = append(pending, cl)
		}
		c.mu.Unlock()
		for _, cl := range pending {
			if err := c.write(cl.msg); err != nil {
				c.opts.Logger.Info("streamer: resend after reconnect", "id", cl.id, "error", err)
			}
		}
	}
}

// reconnect dials until it succeeds, the client is closed or the server
// refuses the handshake with a 4xx (a bad or expired token).
func (c *Client) reconnect() (*websocket.Conn, error) {
	for attempt := 0; ; attempt++ {
		delay := min(c.opts.MaxBackoff, c.opts.MinBackoff<<min(attempt, 20))
		delay = time.Duration(rand.Int64N(int64(delay)) + 1) // full jitter
		select {
		case <-c.ctx.Done():
			return nil, ErrClosed
		case <-time.After(delay):
		}
		token := c.token
		if c.opts.Token != nil {
			t, err := c.opts.Token(c.ctx)
			if err != nil {
				return nil, fmt.Errorf("streamer: token for reconnect: %w", err)
			}
			token = t
		}
		ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
		ws, err := c.dial(ctx, token)
		cancel()
		var he *HandshakeError
		switch {
		case err == nil:
			c.opts.Logger.Info("streamer: reconnected", "attempt", attempt+1)
			return ws, nil
		case errors.As(err, &he) && he.StatusCode >= 400 && he.StatusCode < 500:
			return nil, err
		}
		c.opts.Logger.Info("streamer: reconnect failed", "attempt", attempt+1, "error", err)
	}
}

// stop fails every waiting call with err.
func (c *Client) stop(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
	for id, cl := range c.calls {
		close(cl.frames)
		delete(c.calls, id)
	}
}

// read dispatches frames to their calls until the connection fails.
func (c *Client) read(ws *websocket.Conn) error {
	for {
		_, data, err := ws.Read(c.ctx)
		if err != nil {
			return err
		}
		var f frame
		if err := json.Unmarshal(data, &f); err != nil {
			c.opts.Logger.Warn("streamer: undecodable frame", "error", err)
			continue
		}
		c.mu.Lock()
		cl := c.calls[f.RequestID]
		if cl != nil {
			select {
			case cl.frames <- f:
			default:
				c.opts.Logger.Warn("streamer: frame dropped, the caller is not reading", "id", f.RequestID, "type", f.Type)
			}
		}
		c.mu.Unlock()
	}
}

// keepAlive sends a ping action every PingInterval until the connection ends.
// Answers to pings need no waiting call: their frames are dropped.
func (c *Client) keepAlive(ws *websocket.Conn, dead <-chan struct{}) {
	t := time.NewTicker(c.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-dead:
			return
		case <-t.C:
			msg, _ := json.Marshal(protocol.Message{Action: "ping", ID: "ping-" + newID()})
			ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
			err := ws.Write(ctx, websocket.MessageText, msg)
			cancel()
			if err != nil {
				return
			}
		}
	}
}

// write sends a message on the current connection, waiting for one while the
// client reconnects.
func (c *Client) write(msg []byte) error {
	c.mu.Lock()
	ready, err := c.ready, c.err
	c.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case <-ready:
	case <-c.ctx.Done():
		return ErrClosed
	}
	c.mu.Lock()
	ws := c.ws
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	return ws.Write(ctx, websocket.MessageText, msg)
}

// start registers a call for id and sends msg.
func (c *Client) start(id string, msg protocol.Message) (*call, error) {
	data, err := json.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("streamer: encode message: %w", err)
	}
	cl := &call{id: id, msg: data, frames: make(chan frame, 1024)}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	if _, dup := c.calls[id]; dup {
		c.mu.Unlock()
		return nil, fmt.Errorf("streamer: a call with id %q is already waiting", id)
	}
	c.calls[id] = cl
	c.mu.Unlock()
	if err := c.write(data); err != nil {
		c.finish(cl)
		return nil, fmt.Errorf("streamer: send: %w", err)
	}
	return cl, nil
}

func (c *Client) finish(cl *call) {
	c.mu.Lock()
	if c.calls[cl.id] == cl {
		delete(c.calls, cl.id)
	}
	c.mu.Unlock()
}

// next waits for the call's next frame.
func (c *Client) next(ctx context.Context, cl *call) (frame, error) {
	select {
	case f, ok := <-cl.frames:
		if !ok {
			c.mu.Lock()
			err := c.err
			c.mu.Unlock()
			return f, err
		}
		return f, nil
	case <-ctx.Done():
		return frame{}, ctx.Err()
	}
}

// RequestOption changes one request.
type RequestOption func(*protocol.Message)

// WithID sets the request's id, its idempotency key (default: random).
func WithID(id string) RequestOption { return func(m *protocol.Message) { m.ID = id } }

// WithMetadata attaches metadata to the request.
func WithMetadata(md map[string]string) RequestOption {
	return func(m *protocol.Message) { m.Metadata = md }
}

// Request runs action with payload (any JSON-encodable value, or a
// json.RawMessage) and returns its result: a sync action's response data, or
// an async action's result once it completes. onProgress (may be nil) is called
// with each progress report of an async action, in order. A failure reported by
// the server is an *Error.
func (c *Client) Request(ctx context.Context, action string, payload any, onProgress func(Progress), opts ...RequestOption) (json.RawMessage, error) {
	msg := protocol.Message{Action: action, ID: newID()}
	if payload != nil {
		raw, err := json.Marshal(payload)
		if err != nil {
			return nil, fmt.Errorf("streamer: encode payload: %w", err)
		}
		msg.Payload = raw
	}
	for _, o := range opts {
		o(&msg)
	}
	cl, err := c.start(msg.ID, msg)
	if err != nil {
		return nil, err
	}
	defer c.finish(cl)
	return c.await(ctx, cl, onProgress)
}

// await follows a call to its final frame.
func (c *Client) await(ctx context.Context, cl *call, onProgress func(Progress)) (json.RawMessage, error) {
	last := -1.0
	for {
		f, err := c.next(ctx, cl)
		if err != nil {
			return nil, err
		}
		switch f.Type {
		case protocol.TypeResponse:
			if !f.Success {
				return nil, &Error{RequestID: cl.id, Code: protocol.CodeInternal, Message: "the server answered without success"}
			}
			return f.Data, nil
		case protocol.TypeProgress:
			// Frames repeated on a reconnect's overlap never go backwards.
			if onProgress != nil && f.Percentage >= last {
				last = f.Percentage
				onProgress(Progress{RequestID: cl.id, Percentage: f.Percentage, Message: f.Message, Metadata: f.Metadata})
			}
		case protocol.TypeComplete:
			if f.Success {
				return f.Result, nil
			}
			return nil, errorOf(cl.id, f.Error)
		case protocol.TypeError:
			return nil, errorOf(cl.id, f.Error)
		}
	}
}

func errorOf(id string, b *protocol.ErrorBody) *Error {
	if b == nil {
		return &Error{RequestID: id, Code: protocol.CodeInternal, Message: "failed without an error"}
	}
	return &Error{RequestID: id, Code: b.Code, Message: b.Message, Details: b.Details}
}

// builtin sends a built-in action naming requestID and returns its response
// data. frames of the target request are not read.
func (c *Client) builtin(ctx context.Context, action string, target protocol.Message) (json.RawMessage, error) {
	cl, err := c.start(target.ID, target)
	if err != nil {
		return nil, err
	}
	defer c.finish(cl)
	for {
		f, err := c.next(ctx, cl)
		if err != nil {
			return nil, err
		}
		switch f.Type {
		case protocol.TypeResponse, protocol.TypePong:
			return f.Data, nil
		case protocol.TypeError:
			return nil, errorOf(cl.id, f.Error)
		}
	}
}

func targetMessage(action, requestID string) protocol.Message {
	payload, _ := json.Marshal(protocol.Target{RequestID: requestID}) // plain struct: cannot fail
	return protocol.Message{Action: action, ID: action + "-" + newID(), Payload: payload}
}

// Status returns the state of a request of the caller's tenant.
func (c *Client) Status(ctx context.Context, requestID string) (RequestStatus, error) {
	var st RequestStatus
	data, err := c.builtin(ctx, "status", targetMessage("status", requestID))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("streamer: decode status: %w", err)
	}
	return st, nil
}

// Cancel cancels a request of the caller's tenant. Its followers (Request,
// Subscribe) then fail with an *Error of code CANCELLED.
func (c *Client) Cancel(ctx context.Context, requestID string) error {
	_, err := c.builtin(ctx, "cancel", targetMessage("cancel", requestID))
	return err
}

// Ping sends the ping action and waits for the pong.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.builtin(ctx, "ping", protocol.Message{Action: "ping", ID: "ping-" + newID()})
	return err
}

// Subscribe follows a request of the caller's tenant, sent from any
// connection, and returns its result like Request. A finished request's
// result comes at once.
func (c *Client) Subscribe(ctx context.Context, requestID string, onProgress func(Progress)) (json.RawMessage, error) {
	target := &call{id: requestID, frames: make(chan frame, 1024)}
	c.mu.Lock()
	if _, dup := c.calls[requestID]; dup {
		c.mu.Unlock()
		return nil, fmt.Errorf("streamer: request %q is already followed by this client", requestID)
	}
	msg := targetMessage("subscribe", requestID)
	target.msg, _ = json.Marshal(msg) // resent on reconnect; plain struct: cannot fail
	c.calls[requestID] = target
	c.mu.Unlock()
	defer c.finish(target)
	if _, err := c.builtin(ctx, "subscribe", msg); err != nil {
		return nil, err
	}
	return c.await(ctx, target, onProgress)
}

// Reconnects is how often the client replaced its connection (after a drop,
// or before the 2-hour cap).
func (c *Client) Reconnects() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reconnects
}

// Close closes the connection and fails waiting calls with ErrClosed.
func (c *Client) Close() error {
	c.cancel()
	<-c.done
	return nil
}

// newID returns a random request id.
func newID() string {
	b := make([]byte, 12)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}
