package tracing

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

const header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"

// TestSpanSent checks the document the daemon receives: its header line, the
// trace and parent ids, times, annotations and the fault with its cause.
func TestSpanSent(t *testing.T) {
	t.Parallel()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	tr := New("tcp:127.0.0.1:1 udp:"+pc.LocalAddr().String(), slog.New(slog.DiscardHandler))
	ctx := ContextWithHeader(context.Background(), header)
	span := tr.Start(ctx, "handler delay")
	span.Annotate("request_id", "r1")
	span.Annotate("attempt", 2)
	span.End(errors.New("boom"))

	buf := make([]byte, 64<<10)
	_ = pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	head, body, ok := strings.Cut(string(buf[:n]), "\n")
	if !ok || head != `{"format":"json","version":1}` {
		t.Fatalf("daemon header %q", head)
	}
	var doc document
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Name != "handler delay" || doc.TraceID != "1-5759e988-bd862e3fe1be46a994272793" || doc.ParentID != "53995c3f42cd8ad8" ||
		doc.Type != "subsegment" || len(doc.ID) != 16 || doc.EndTime < doc.StartTime || doc.StartTime == 0 {
		t.Errorf("document %+v", doc)
	}
	if doc.Annotations["request_id"] != "r1" || doc.Annotations["attempt"] != 2.0 {
		t.Errorf("annotations %v", doc.Annotations)
	}
	if !doc.Fault || doc.Cause == nil || doc.Cause.Exceptions[0].Message != "boom" {
		t.Errorf("fault %v cause %+v", doc.Fault, doc.Cause)
	}
}

// TestNothingToRecord: no daemon, no trace header, or an unsampled trace give
// a nil span, which is safe to use.
func TestNothingToRecord(t *testing.T) {
	t.Parallel()
	unsampled := strings.Replace(header, "Sampled=1", "Sampled=0", 1)
	tests := []struct {
		name   string
		tracer *Tracer
		header string
	}{
		{"nil tracer", nil, header},
		{"no daemon", New("", nil), header},
		{"no header", New("127.0.0.1:2000", nil), ""},
		{"not sampled", New("127.0.0.1:2000", nil), unsampled},
		{"no root", New("127.0.0.1:2000", nil), "Parent=1;Sampled=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := ContextWithHeader(context.Background(), tt.header)
			span := tt.tracer.Start(ctx, "x")
			if span != nil {
				t.Fatalf("span %+v, want nil", span)
			}
			span.Annotate("k", "v")
			span.End(nil)
		})
	}
}

// TestUDPAddress reads the daemon address forms Lambda uses.
func TestUDPAddress(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"169.254.79.129:2000":                   "169.254.79.129:2000",
		"tcp:127.0.0.1:2000 udp:127.0.0.1:2001": "127.0.0.1:2001",
		"udp:127.0.0.1:2001 tcp:127.0.0.1:2000": "127.0.0.1:2001",
		"":                                      "",
		"tcp:127.0.0.1:2000":                    "",
	}
	for in, want := range tests {
		if got := udpAddress(in); got != want {
			t.Errorf("udpAddress(%q) = %q, want %q", in, got, want)
		}
	}
}
