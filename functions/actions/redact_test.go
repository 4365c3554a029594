package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
)

// TestRedact replaces the values of sensitive fields — by name or marked by
// the action, at any depth, in quoted forms — and nothing else.
func TestRedact(t *testing.T) {
	t.Parallel()
	a := Action{Options: Options{Sensitive: []string{"card_number"}}}
	tests := []struct {
		name    string
		payload string
		text    string
		want    string
	}{
		{"by name", `{"password":"hunter22"}`, "login with hunter22 failed", "login with [REDACTED] failed"},
		{"name in any case, inside a word", `{"ClientSecret":"s3cr3t-value"}`, "bad s3cr3t-value", "bad [REDACTED]"},
		{"marked by the action", `{"Card_Number":"4111111111111111"}`, "card 4111111111111111 declined", "card [REDACTED] declined"},
		{"below a sensitive field", `{"credentials":{"user":"alice-admin","keys":["k-123456"]}}`, "alice-admin k-123456", "[REDACTED] [REDACTED]"},
		{"number", `{"api_key":12345678}`, "key 12345678", "key [REDACTED]"},
		{"Go-quoted", `{"token":"a\"b\\c-long"}`, `bad "a\"b\\c-long"`, `bad "[REDACTED]"`},
		{"other fields stay", `{"email":"bob@example.com","password":"pw-long-enough"}`, "bob@example.com: pw-long-enough", "bob@example.com: [REDACTED]"},
		{"too short to search", `{"pin_token":"123"}`, "a 123 b", "a 123 b"},
		{"no payload", ``, "plain text", "plain text"},
		{"not JSON", `{`, "plain text", "plain text"},
	}
	for _, tt := range tests {
		if got := a.Redact(tt.text, json.RawMessage(tt.payload)); got != tt.want {
			t.Errorf("%s: Redact(%q) = %q, want %q", tt.name, tt.text, got, tt.want)
		}
	}
}

// TestRegisteredHandlerIsRedacted: a registered handler's error text and
// panic value lose the sensitive values, while errors.Is / errors.As
// (UserError, Permanent, context errors) still see the original error.
func TestRegisteredHandlerIsRedacted(t *testing.T) {
	t.Parallel()
	user := &UserError{Code: "DECLINED", Message: "declined"}
	reg := NewRegistry()
	reg.MustRegister("fails", func(_ context.Context, req Request, _ Reporter) (any, error) {
		var p struct{ Password string }
		_ = json.Unmarshal(req.Payload, &p)
		if p.Password == "panic-please" {
			panic("panicking with " + p.Password)
		}
		return nil, Permanent(fmt.Errorf("password %s: %w: %w", p.Password, user, context.Canceled))
	}, Options{})
	a, _ := reg.Lookup("fails")

	_, err := a.Handler(context.Background(), Request{Payload: json.RawMessage(`{"password":"pw-s3cret"}`)}, nil)
	var ue *UserError
	switch {
	case err == nil || err.Error() != "password [REDACTED]: declined: context canceled":
		t.Errorf("error text %v, want the password redacted", err)
	case !IsPermanent(err) || !errors.As(err, &ue) || ue != user || !errors.Is(err, context.Canceled):
		t.Errorf("the redacted error %v hides what it wraps", err)
	}

	defer func() {
		if p := recover(); fmt.Sprint(p) != "panicking with [REDACTED]" {
			t.Errorf("panic value %v, want the password redacted", p)
		}
	}()
	_, _ = a.Handler(context.Background(), Request{Payload: json.RawMessage(`{"password":"panic-please"}`)}, nil)
}
