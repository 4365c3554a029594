package demo

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"sync"
	"testing"

	"github.com/streamer-dev/streamer/functions/actions"
)

// recorder is an in-memory Reporter.
type recorder struct {
	mu         sync.Mutex
	percents   []float64
	checkpoint json.RawMessage
}

func (r *recorder) Report(p float64, _ string, _ map[string]any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.percents = append(r.percents, p)
}

func (r *recorder) Checkpoint(state any) error {
	b, err := json.Marshal(state)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checkpoint = b
	return nil
}

func TestRegister(t *testing.T) {
	t.Parallel()
	reg := actions.NewRegistry()
	Register(reg)
	if got, want := reg.Names(), []string{"delay", "echo", "fail", "generate_report"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Names = %v, want %v", got, want)
	}
	if a, _ := reg.Lookup("echo"); a.Options.Mode != actions.Sync {
		t.Errorf("echo mode = %v, want sync", a.Options.Mode)
	}
}

func TestEcho(t *testing.T) {
	t.Parallel()
	got, err := Echo(context.Background(), actions.Request{Payload: json.RawMessage(`{"a":1}`)}, nil)
	b, _ := json.Marshal(got)
	if err != nil || string(b) != `{"echo":{"a":1}}` {
		t.Errorf("Echo = %s, %v", b, err)
	}
}

func TestInvalidPayloads(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler actions.Handler
		give    string
	}{
		{"delay negative", Delay, `{"seconds":-1}`},
		{"delay too long", Delay, `{"seconds":100000}`},
		{"delay zero steps", Delay, `{"seconds":1,"steps":0}`},
		{"delay unknown field", Delay, `{"secs":1}`},
		{"fail negative", Fail, `{"times":-1}`},
		{"fail wrong type", Fail, `{"times":"2"}`},
		{"report type", GenerateReport, `{"report_type":"x","from":"2026-01-01","to":"2026-01-02"}`},
		{"report dates", GenerateReport, `{"report_type":"sales","from":"2026-01-02","to":"2026-01-01"}`},
		{"report too many days", GenerateReport, `{"report_type":"sales","from":"2026-01-01","to":"2026-12-31"}`},
		{"report group", GenerateReport, `{"report_type":"sales","from":"2026-01-01","to":"2026-01-02","group_by":"hour"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tt.handler(context.Background(), actions.Request{Payload: json.RawMessage(tt.give), Attempt: 1}, &recorder{})
			var ue *actions.UserError
			if !errors.As(err, &ue) || ue.Code != "VALIDATION_ERROR" || !actions.IsPermanent(err) {
				t.Errorf("error = %v, want a permanent VALIDATION_ERROR", err)
			}
		})
	}
}

func TestDelayResumes(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	req := actions.Request{Payload: json.RawMessage(`{"seconds":0.004,"steps":4}`), Attempt: 2, Checkpoint: json.RawMessage(`{"step":2}`)}
	got, err := Delay(context.Background(), req, rec)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rec.percents, []float64{75, 100}) || string(rec.checkpoint) != `{"step":4}` {
		t.Errorf("progress %v checkpoint %s, want [75 100] and step 4", rec.percents, rec.checkpoint)
	}
	if got.(map[string]any)["resumed_from_step"] != 2 {
		t.Errorf("result = %v, want resumed_from_step 2", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Delay(ctx, actions.Request{Payload: json.RawMessage(`{"seconds":10}`)}, &recorder{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Delay with a cancelled ctx = %v, want context.Canceled", err)
	}
}

func TestFail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give          string
		attempt       int
		wantErr       bool
		wantPermanent bool
	}{
		{`{"times":2}`, 1, true, false},
		{`{"times":2}`, 2, true, false},
		{`{"times":2}`, 3, false, false},
		{`{}`, 1, false, false},
		{`{"permanent":true}`, 1, true, true},
	}
	for _, tt := range tests {
		_, err := Fail(context.Background(), actions.Request{Payload: json.RawMessage(tt.give), Attempt: tt.attempt}, nil)
		if (err != nil) != tt.wantErr || actions.IsPermanent(err) != tt.wantPermanent {
			t.Errorf("Fail(%s, attempt %d) = %v; want error %v, permanent %v", tt.give, tt.attempt, err, tt.wantErr, tt.wantPermanent)
		}
	}
}

func TestGenerateReportResumeMatchesFullRun(t *testing.T) {
	t.Parallel()
	payload := json.RawMessage(`{"report_type":"sales","from":"2026-01-25","to":"2026-02-10","group_by":"week","delay_ms":0}`)
	full := &recorder{}
	want, err := GenerateReport(context.Background(), actions.Request{TenantID: "acme", Payload: payload, Attempt: 1}, full)
	if err != nil {
		t.Fatal(err)
	}
	// Stop after 5 days, then resume from that checkpoint.
	ctx, cancel := context.WithCancel(context.Background())
	partial := &stopAfter{n: 5, cancel: cancel}
	if _, err := GenerateReport(ctx, actions.Request{TenantID: "acme", Payload: payload, Attempt: 1}, partial); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run = %v, want context.Canceled", err)
	}
	got, err := GenerateReport(context.Background(), actions.Request{TenantID: "acme", Payload: payload, Attempt: 2, Checkpoint: partial.checkpoint}, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	w, g := want.(Report), got.(Report)
	w.GeneratedAt, g.GeneratedAt = "", ""
	if !reflect.DeepEqual(g, w) {
		t.Errorf("resumed report = %+v, want %+v", g, w)
	}
	if len(w.Rows) != 4 || w.Summary.Records == 0 || full.percents[len(full.percents)-1] != 100 {
		t.Errorf("report rows %d, summary %+v, last progress %v", len(w.Rows), w.Summary, full.percents)
	}
	if b, _ := json.Marshal(want); len(b) > 32<<10 {
		t.Errorf("report is %d bytes, more than one frame", len(b))
	}
}

// stopAfter cancels the run after n checkpoints.
type stopAfter struct {
	recorder
	n      int
	cancel context.CancelFunc
}

func (s *stopAfter) Checkpoint(state any) error {
	if err := s.recorder.Checkpoint(state); err != nil {
		return err
	}
	if s.n--; s.n == 0 {
		s.cancel()
	}
	return nil
}
