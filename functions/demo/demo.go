// Package demo holds the actions shipped with the default stack: echo (sync),
// delay, fail and generate_report (async). The end-to-end tests drive them, and
// they show how to write a handler: validate the payload with actions.Invalid,
// report progress, save checkpoints and resume from them, honour ctx.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/streamer-dev/streamer/functions/actions"
	"github.com/streamer-dev/streamer/functions/protocol"
)

// Register adds the demo actions to reg.
func Register(reg *actions.Registry) {
	reg.MustRegister("echo", Echo, actions.Options{Mode: actions.Sync})
	reg.MustRegister("delay", Delay, actions.Options{Timeout: MaxDelaySeconds*time.Second + time.Minute})
	reg.MustRegister("fail", Fail, actions.Options{Retry: actions.RetryPolicy{MaxAttempts: 5, BaseDelay: 200 * time.Millisecond, MaxDelay: 2 * time.Second}})
	reg.MustRegister("generate_report", GenerateReport, actions.Options{Timeout: 5 * time.Minute})
}

// decode unmarshals a payload strictly into v; an absent payload leaves v as is.
func decode(payload json.RawMessage, v any) error {
	if len(payload) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return actions.Invalid("invalid payload: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// Echo answers with its payload: {"echo": payload}.
func Echo(_ context.Context, req actions.Request, _ actions.Reporter) (any, error) {
	payload := req.Payload
	if len(payload) == 0 {
		payload = json.RawMessage(`{}`)
	}
	return map[string]json.RawMessage{"echo": payload}, nil
}

// MaxDelaySeconds caps delay's payload.seconds.
const MaxDelaySeconds = 240

// DelayPayload is delay's input.
type DelayPayload struct {
	// Seconds to sleep in total (may be fractional).
	Seconds float64 `json:"seconds"`
	// Steps splits the sleep; progress is reported after each. Default: 1.
	Steps int `json:"steps"`
}

type delayCheckpoint struct {
	Step int `json:"step"`
}

// Delay sleeps payload.seconds in payload.steps steps, reporting progress and
// saving a checkpoint {"step": n} after each, and resumes from the checkpoint
// after a retry.
func Delay(ctx context.Context, req actions.Request, progress actions.Reporter) (any, error) {
	p := DelayPayload{Steps: 1}
	if err := decode(req.Payload, &p); err != nil {
		return nil, err
	}
	switch {
	case p.Seconds < 0 || p.Seconds > MaxDelaySeconds:
		return nil, actions.Invalid("seconds must be between 0 and %d", MaxDelaySeconds)
	case p.Steps < 1 || p.Steps > 1000:
		return nil, actions.Invalid("steps must be between 1 and 1000")
	}
	var cp delayCheckpoint
	if len(req.Checkpoint) > 0 {
		if err := json.Unmarshal(req.Checkpoint, &cp); err != nil {
			return nil, actions.Permanent(fmt.Errorf("delay: bad checkpoint %s: %w", req.Checkpoint, err))
		}
	}
	step := time.Duration(p.Seconds / float64(p.Steps) * float64(time.Second))
	for i := cp.Step + 1; i <= p.Steps; i++ {
		t := time.NewTimer(step)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		if err := progress.Checkpoint(delayCheckpoint{Step: i}); err != nil {
			return nil, err
		}
		progress.Report(float64(i)*100/float64(p.Steps), fmt.Sprintf("step %d of %d", i, p.Steps), nil)
	}
	return map[string]any{"slept_seconds": p.Seconds, "steps": p.Steps, "resumed_from_step": cp.Step}, nil
}

// FailPayload is fail's input.
type FailPayload struct {
	// Times is how many attempts fail (with a retryable error) before one succeeds.
	Times int `json:"times"`
	// Permanent makes every attempt fail with a permanent error.
	Permanent bool `json:"permanent"`
}

// Fail fails payload.times attempts with a retryable error and then succeeds;
// with permanent: true it fails at once, without retries.
func Fail(_ context.Context, req actions.Request, _ actions.Reporter) (any, error) {
	var p FailPayload
	if err := decode(req.Payload, &p); err != nil {
		return nil, err
	}
	if p.Times < 0 || p.Times > 100 {
		return nil, actions.Invalid("times must be between 0 and 100")
	}
	if p.Permanent {
		return nil, actions.Permanent(&actions.UserError{Code: protocol.CodeInternal, Message: "permanent failure requested"})
	}
	if req.Attempt <= p.Times {
		return nil, &actions.UserError{Code: protocol.CodeInternal, Message: fmt.Sprintf("planned failure %d of %d", req.Attempt, p.Times)}
	}
	return map[string]any{"succeeded_on_attempt": req.Attempt}, nil
}

// errCheckpoint reports a checkpoint that does not fit the payload.
var errCheckpoint = errors.New("checkpoint does not match the payload")
