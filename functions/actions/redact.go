package actions

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Redacted replaces a sensitive value in logged text.
const Redacted = "[REDACTED]"

// sensitiveName matches the payload field names that are sensitive whatever
// the action says.
var sensitiveName = regexp.MustCompile(`(?i)password|passwd|passphrase|secret|token|credential|api_?key|private_?key|authorization`)

// minRedactLen is the shortest value searched for: shorter ones would
// mangle unrelated text.
const minRedactLen = 4

// sensitiveValues returns the values of payload's sensitive fields — named
// by sensitive (case-insensitive) or matching sensitiveName, at any depth;
// every value below such a field — in the forms text could quote them in,
// longest first.
func sensitiveValues(payload json.RawMessage, sensitive []string) []string {
	var doc any
	if len(payload) == 0 || json.Unmarshal(payload, &doc) != nil {
		return nil
	}
	var out []string
	var walk func(v any, secret bool)
	walk = func(v any, secret bool) {
		switch v := v.(type) {
		case map[string]any:
			for k, child := range v {
				walk(child, secret || sensitiveName.MatchString(k) || slices.ContainsFunc(sensitive, func(s string) bool { return strings.EqualFold(s, k) }))
			}
		case []any:
			for _, child := range v {
				walk(child, secret)
			}
		case string:
			if secret && len(v) >= minRedactLen {
				quoted := strconv.Quote(v)
				escaped, _ := json.Marshal(v)
				out = append(out, v, quoted[1:len(quoted)-1], string(escaped[1:len(escaped)-1]))
			}
		case float64:
			if s := strconv.FormatFloat(v, 'f', -1, 64); secret && len(s) >= minRedactLen {
				out = append(out, s)
			}
		}
	}
	walk(doc, false)
	slices.SortFunc(out, func(a, b string) int {
		if d := len(b) - len(a); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	return slices.Compact(out)
}

// Redact returns text with every value of payload's sensitive fields
// replaced by Redacted. A field is sensitive when its name contains
// password, passwd, passphrase, secret, token, credential, api_key, apikey,
// private_key or authorization (in any case), or when the action's
// Options.Sensitive names it; everything below a sensitive field is
// sensitive. Values shorter than 4 characters are left alone.
func (a Action) Redact(text string, payload json.RawMessage) string {
	for _, v := range sensitiveValues(payload, a.Options.Sensitive) {
		text = strings.ReplaceAll(text, v, Redacted)
	}
	return text
}

// redactedError is a handler's error whose text had sensitive values
// replaced; it unwraps to the original, so errors.Is and errors.As (UserError,
// Permanent, context errors) see through it.
type redactedError struct {
	err  error
	text string
}

// Error is the redacted text.
func (e *redactedError) Error() string { return e.text }

// Unwrap returns the handler's error.
func (e *redactedError) Unwrap() error { return e.err }

// redacting wraps a's handler so that neither its error texts nor its
// panic values carry a sensitive payload value: the router and processor
// log them, and the dead-letter queue keeps them.
func (a Action) redacting() Handler {
	h := a.Handler
	return func(ctx context.Context, req Request, progress Reporter) (res any, err error) {
		defer func() {
			if p := recover(); p != nil {
				panic(a.Redact(fmt.Sprint(p), req.Payload))
			}
		}()
		res, err = h(ctx, req, progress)
		if err != nil {
			if text := a.Redact(err.Error(), req.Payload); text != err.Error() {
				err = &redactedError{err: err, text: text}
			}
		}
		return res, err
	}
}
