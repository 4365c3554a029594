package actions

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func noop(context.Context, Request, Reporter) (any, error) { return nil, nil }

func TestRegister(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		give    string
		handler Handler
		opts    Options
		wantErr string
	}{
		{"async defaults", "report", noop, Options{}, ""},
		{"sync", "echo", noop, Options{Mode: Sync}, ""},
		{"empty name", "", noop, Options{}, "name must match"},
		{"bad characters", "a b", noop, Options{}, "name must match"},
		{"too long", strings.Repeat("a", 65), noop, Options{}, "name must match"},
		{"built-in", "status", noop, Options{}, "built-in"},
		{"nil handler", "x", nil, Options{}, "nil handler"},
		{"unknown mode", "x", noop, Options{Mode: 7}, "unknown mode"},
		{"negative timeout", "x", noop, Options{Timeout: -time.Second}, "negative timeout"},
		{"factor below one", "x", noop, Options{Retry: RetryPolicy{Factor: 0.5}}, "factor"},
		{"negative attempts", "x", noop, Options{Retry: RetryPolicy{MaxAttempts: -1}}, "max attempts"},
		{"max below base", "x", noop, Options{Retry: RetryPolicy{BaseDelay: time.Minute, MaxDelay: time.Second}}, "below base delay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := NewRegistry().Register(tt.give, tt.handler, tt.opts)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Register() error = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Register() error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestRegisterResolvesDefaults(t *testing.T) {
	t.Parallel()
	r := NewRegistry()
	r.MustRegister("sync", noop, Options{Mode: Sync})
	r.MustRegister("async", noop, Options{Retry: RetryPolicy{MaxAttempts: 2}})
	if err := r.Register("sync", noop, Options{}); err == nil {
		t.Error("duplicate Register() succeeded, want error")
	}
	s, _ := r.Lookup("sync")
	if s.Options.Timeout != DefaultSyncTimeout {
		t.Errorf("sync timeout = %s, want %s", s.Options.Timeout, DefaultSyncTimeout)
	}
	a, ok := r.Lookup("async")
	if !ok {
		t.Fatal("Lookup(async) not found")
	}
	want := RetryPolicy{MaxAttempts: 2, BaseDelay: time.Second, Factor: 2, MaxDelay: 5 * time.Minute}
	if a.Options.Retry != want || a.Options.Timeout != DefaultAsyncTimeout {
		t.Errorf("async options = %+v, want retry %+v and timeout %s", a.Options, want, DefaultAsyncTimeout)
	}
	if got := fmt.Sprint(r.Names()); got != "[async sync]" {
		t.Errorf("Names() = %s", got)
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	p := DefaultRetryPolicy
	tests := []struct {
		give int
		want time.Duration
	}{
		{1, time.Second},
		{2, 2 * time.Second},
		{5, 16 * time.Second},
		{9, 256 * time.Second},
		{10, 5 * time.Minute},
		{1000, 5 * time.Minute},
	}
	for _, tt := range tests {
		if got := p.Backoff(tt.give); got != tt.want {
			t.Errorf("Backoff(%d) = %s, want %s", tt.give, got, tt.want)
		}
	}
}

func TestPermanent(t *testing.T) {
	t.Parallel()
	base := errors.New("boom")
	err := fmt.Errorf("run: %w", Permanent(base))
	if !IsPermanent(err) || !errors.Is(err, base) {
		t.Errorf("IsPermanent(%v) = false or lost the cause", err)
	}
	if IsPermanent(base) || Permanent(nil) != nil {
		t.Error("plain error reported permanent, or Permanent(nil) != nil")
	}
	var ue *UserError
	if inv := Invalid("seconds must be positive, got %d", -1); !errors.As(inv, &ue) || !IsPermanent(inv) || ue.Code != "VALIDATION_ERROR" {
		t.Errorf("Invalid() = %#v, want a permanent VALIDATION_ERROR UserError", inv)
	}
}
