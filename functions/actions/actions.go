// Package actions is Streamer's handler API: register an action with its mode,
// timeout and retry policy, report progress while it runs, and return a result
// or an error.
//
// One Registry serves both Lambdas: the router runs Sync actions inline and
// queues Async ones; the processor runs Async ones. An embedder writes one main
// package per Lambda that builds the same Registry and hands it to the runtime.
package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"sync"
	"time"
)

// Mode says where an action runs.
type Mode int

const (
	// Async actions are stored, acknowledged and run by the processor.
	Async Mode = iota
	// Sync actions run inline in the router and answer with a response frame.
	Sync
)

// String returns "sync" or "async".
func (m Mode) String() string {
	if m == Sync {
		return "sync"
	}
	return "async"
}

// Request is what a handler receives.
type Request struct {
	// ID is the request id (the client's idempotency key or a generated one).
	ID           string
	Action       string
	TenantID     string
	UserID       string
	ConnectionID string
	Payload      json.RawMessage
	Metadata     map[string]string
	// Attempt counts runs of this request, starting at 1.
	Attempt int
	// Checkpoint is the last state saved with Reporter.Checkpoint, or nil.
	// A handler resumes from it after a retry or a reclaimed lease.
	Checkpoint json.RawMessage
}

// Reporter lets a running handler tell its subscribers how far it has come.
// Its methods are safe for concurrent use.
type Reporter interface {
	// Report sends a progress update (0–100) to every subscriber at once.
	// Updates above the rate limit are coalesced; the last one and 100% always go out.
	Report(percent float64, message string, metadata map[string]any)
	// Checkpoint saves state the handler can resume from (Request.Checkpoint)
	// after a retry or reclaim. It must marshal to JSON.
	Checkpoint(state any) error
}

// Handler runs an action. ctx is cancelled when the client cancels the request,
// when the action's timeout passes and shortly before the Lambda's deadline.
// A returned error is retried according to the action's RetryPolicy unless it is
// marked with Permanent. The result must marshal to JSON.
type Handler func(ctx context.Context, req Request, progress Reporter) (any, error)

// RetryPolicy is exponential backoff with full jitter: before attempt n+1 the
// processor waits a random duration in [0, min(MaxDelay, BaseDelay*Factor^(n-1))].
type RetryPolicy struct {
	// MaxAttempts is the total number of runs, the first included. Default: 5.
	MaxAttempts int
	// BaseDelay is the backoff before the second attempt. Default: 1s.
	BaseDelay time.Duration
	// Factor multiplies the backoff after each attempt. Default: 2.
	Factor float64
	// MaxDelay caps the backoff. Default: 5m.
	MaxDelay time.Duration
}

// DefaultRetryPolicy is used for every zero field of an action's RetryPolicy.
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: 5, BaseDelay: time.Second, Factor: 2, MaxDelay: 5 * time.Minute}

// Default timeouts by mode.
const (
	DefaultSyncTimeout  = 5 * time.Second
	DefaultAsyncTimeout = 5 * time.Minute
)

// Options configure a registered action.
type Options struct {
	// Mode is Async (the zero value) or Sync.
	Mode Mode
	// Timeout bounds one run. Default: 5s for Sync, 5m for Async.
	Timeout time.Duration
	// Retry is the retry policy of Async actions; zero fields take
	// DefaultRetryPolicy's values.
	Retry RetryPolicy
	// Sensitive names payload fields (at any depth, case-insensitive) whose
	// values must never reach a log, besides those sensitive by name (see
	// Redact).
	Sensitive []string
}

// Action is a registered action with its options resolved.
type Action struct {
	Name    string
	Handler Handler
	Options Options
}

// Registry maps action names to handlers. It is safe for concurrent use.
type Registry struct {
	mu      sync.RWMutex
	actions map[string]Action
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{actions: map[string]Action{}} }

// validName is the form of an action name.
var validName = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_.\-]{0,63}$`)

// reserved are the built-in actions, which cannot be registered.
var reserved = map[string]bool{"ping": true, "subscribe": true, "unsubscribe": true, "status": true, "cancel": true}

// IsBuiltin reports whether name is a built-in action (ping, subscribe,
// unsubscribe, status, cancel).
func IsBuiltin(name string) bool { return reserved[name] }

// Register adds an action. It fails on an invalid or reserved name, a nil
// handler, a duplicate, or invalid options. The registered handler's errors
// and panics are redacted (see Action.Redact).
func (r *Registry) Register(name string, h Handler, opts Options) error {
	switch {
	case !validName.MatchString(name):
		return fmt.Errorf("register action %q: name must match %s", name, validName)
	case reserved[name]:
		return fmt.Errorf("register action %q: name is a built-in action", name)
	case h == nil:
		return fmt.Errorf("register action %q: nil handler", name)
	case opts.Mode != Sync && opts.Mode != Async:
		return fmt.Errorf("register action %q: unknown mode %d", name, opts.Mode)
	case opts.Timeout < 0:
		return fmt.Errorf("register action %q: negative timeout %s", name, opts.Timeout)
	}
	resolved, err := opts.resolve()
	if err != nil {
		return fmt.Errorf("register action %q: %w", name, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.actions[name]; dup {
		return fmt.Errorf("register action %q: already registered", name)
	}
	a := Action{Name: name, Handler: h, Options: resolved}
	a.Handler = a.redacting() // handlers' errors and panics are logged
	r.actions[name] = a
	return nil
}

// MustRegister is Register that panics on error, for use in main.
func (r *Registry) MustRegister(name string, h Handler, opts Options) {
	if err := r.Register(name, h, opts); err != nil {
		panic(err)
	}
}

// Lookup returns the action registered under name.
func (r *Registry) Lookup(name string) (Action, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	a, ok := r.actions[name]
	return a, ok
}

// Names returns the registered action names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.actions))
	for n := range r.actions {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (o Options) resolve() (Options, error) {
	if o.Timeout == 0 {
		o.Timeout = DefaultAsyncTimeout
		if o.Mode == Sync {
			o.Timeout = DefaultSyncTimeout
		}
	}
	p, d := &o.Retry, DefaultRetryPolicy
	if p.MaxAttempts == 0 {
		p.MaxAttempts = d.MaxAttempts
	}
	if p.BaseDelay == 0 {
		p.BaseDelay = d.BaseDelay
	}
	if p.Factor == 0 {
		p.Factor = d.Factor
	}
	if p.MaxDelay == 0 {
		p.MaxDelay = d.MaxDelay
	}
	switch {
	case p.MaxAttempts < 1:
		return o, fmt.Errorf("retry max attempts %d is below 1", p.MaxAttempts)
	case p.BaseDelay < 0 || p.MaxDelay < 0:
		return o, fmt.Errorf("retry delays must not be negative (base %s, max %s)", p.BaseDelay, p.MaxDelay)
	case p.Factor < 1:
		return o, fmt.Errorf("retry factor %g is below 1", p.Factor)
	case p.MaxDelay < p.BaseDelay:
		return o, fmt.Errorf("retry max delay %s is below base delay %s", p.MaxDelay, p.BaseDelay)
	}
	return o, nil
}

// Backoff returns the upper bound of the wait before the attempt after attempt
// (1-based): min(MaxDelay, BaseDelay*Factor^(attempt-1)). The processor draws
// the actual wait uniformly from [0, Backoff] (full jitter).
func (p RetryPolicy) Backoff(attempt int) time.Duration {
	d := float64(p.BaseDelay)
	for i := 1; i < attempt && d < float64(p.MaxDelay); i++ {
		d *= p.Factor
	}
	if d > float64(p.MaxDelay) {
		return p.MaxDelay
	}
	return time.Duration(d)
}

// permanentError marks an error that must not be retried.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as not retryable: the request fails at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// UserError is an error whose message is safe to show to the client. Other
// errors reach the client as a generic message; their text goes to the logs.
type UserError struct {
	Code    string
	Message string
}

func (e *UserError) Error() string { return e.Message }

// Invalid returns a UserError with code VALIDATION_ERROR, for bad payloads.
// It is Permanent: retrying cannot fix the input.
func Invalid(format string, args ...any) error {
	return Permanent(&UserError{Code: "VALIDATION_ERROR", Message: fmt.Sprintf(format, args...)})
}
