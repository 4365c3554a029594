// Package tracing records AWS X-Ray subsegments — the processor wraps every
// handler run in one — and sends them to the X-Ray daemon that Lambda runs
// beside the function, as UDP documents. It needs no SDK: the segment
// document and the daemon protocol are small and documented. Without a sampled
// trace header in the context (outside Lambda, or a trace not sampled) or
// without a daemon address, it does nothing.
package tracing

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

// EnvDaemonAddress is where Lambda tells the function the daemon listens:
// "host:port", or "tcp:host:port udp:host:port".
const EnvDaemonAddress = "AWS_XRAY_DAEMON_ADDRESS"

// lambdaTraceKey is the context key under which aws-lambda-go stores the
// invocation's trace header.
const lambdaTraceKey = "x-amzn-trace-id"

// daemonHeader precedes every document sent to the daemon.
const daemonHeader = "{\"format\":\"json\",\"version\":1}\n"

// Tracer sends subsegments to one daemon. The zero Tracer and a nil *Tracer
// record nothing. It is safe for concurrent use.
type Tracer struct {
	addr   string
	logger *slog.Logger

	once sync.Once
	conn net.Conn
	err  error
}

// New returns a tracer sending to the daemon at address (the value of
// AWS_XRAY_DAEMON_ADDRESS); an empty address gives a tracer that records
// nothing. Send failures are logged at debug level and never fail a run.
func New(address string, logger *slog.Logger) *Tracer {
	return &Tracer{addr: udpAddress(address), logger: logger}
}

// udpAddress picks the UDP address out of the daemon address forms.
func udpAddress(s string) string {
	for _, part := range strings.Fields(s) {
		if rest, ok := strings.CutPrefix(part, "udp:"); ok {
			return rest
		}
		if !strings.Contains(part, "tcp:") {
			return part
		}
	}
	return ""
}

// Header is a parsed X-Ray trace header:
// "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".
type Header struct {
	Root    string
	Parent  string
	Sampled bool
}

// ParseHeader parses a trace header; ok is false when it has no root.
func ParseHeader(s string) (h Header, ok bool) {
	for _, field := range strings.Split(s, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(field), "=")
		switch k {
		case "Root":
			h.Root = v
		case "Parent":
			h.Parent = v
		case "Sampled":
			h.Sampled = v == "1"
		}
	}
	return h, h.Root != ""
}

// ContextWithHeader returns ctx carrying a trace header where aws-lambda-go
// puts the invocation's, as a Lambda invocation's context does.
func ContextWithHeader(ctx context.Context, header string) context.Context {
	return context.WithValue(ctx, lambdaTraceKey, header)
}

// Span is one open subsegment. A nil *Span records nothing.
type Span struct {
	t           *Tracer
	doc         document
	annotations map[string]any
}

type document struct {
	Name        string         `json:"name"`
	ID          string         `json:"id"`
	TraceID     string         `json:"trace_id"`
	ParentID    string         `json:"parent_id,omitempty"`
	Type        string         `json:"type"`
	StartTime   float64        `json:"start_time"`
	EndTime     float64        `json:"end_time"`
	Fault       bool           `json:"fault,omitempty"`
	Cause       *cause         `json:"cause,omitempty"`
	Annotations map[string]any `json:"annotations,omitempty"`
}

type cause struct {
	Exceptions []exception `json:"exceptions"`
}

type exception struct {
	ID      string `json:"id"`
	Message string `json:"message"`
}

// Start opens a subsegment named name under the invocation's trace (the
// header aws-lambda-go puts in ctx). It returns nil when there is nothing to
// record.
func (t *Tracer) Start(ctx context.Context, name string) *Span {
	if t == nil || t.addr == "" {
		return nil
	}
	raw, _ := ctx.Value(lambdaTraceKey).(string)
	h, ok := ParseHeader(raw)
	if !ok || !h.Sampled {
		return nil
	}
	return &Span{t: t, doc: document{
		Name: name, ID: newID(), TraceID: h.Root, ParentID: h.Parent, Type: "subsegment", StartTime: seconds(time.Now()),
	}, annotations: map[string]any{}}
}

// Annotate adds an indexed annotation (string, number or bool) to the span.
func (s *Span) Annotate(key string, value any) {
	if s != nil {
		s.annotations[key] = value
	}
}

// End closes the span, marking it a fault when err is not nil, and sends it.
func (s *Span) End(err error) {
	if s == nil {
		return
	}
	s.doc.EndTime = seconds(time.Now())
	if len(s.annotations) > 0 {
		s.doc.Annotations = s.annotations
	}
	if err != nil {
		s.doc.Fault = true
		s.doc.Cause = &cause{Exceptions: []exception{{ID: newID(), Message: err.Error()}}}
	}
	s.t.send(s.doc)
}

func (t *Tracer) send(doc document) {
	t.once.Do(func() { t.conn, t.err = net.Dial("udp", t.addr) })
	if t.err != nil {
		t.logger.Debug("x-ray daemon unreachable", "address", t.addr, "error", t.err)
		return
	}
	body, err := json.Marshal(doc)
	if err != nil {
		t.logger.Debug("x-ray subsegment", "error", err)
		return
	}
	if _, err := t.conn.Write(append([]byte(daemonHeader), body...)); err != nil {
		t.logger.Debug("send x-ray subsegment", "error", fmt.Errorf("%s: %w", t.addr, err))
	}
}

func seconds(t time.Time) float64 { return float64(t.UnixMicro()) / 1e6 }

// newID returns a 64-bit id as 16 hex digits, as X-Ray expects.
func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
