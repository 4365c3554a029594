// Package metrics writes CloudWatch metrics in the Embedded Metric Format
// (EMF): one JSON line per data point on the Lambda's stdout, which CloudWatch
// Logs turns into metrics with no API call.
package metrics

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"
)

// Namespace is the CloudWatch namespace of every Streamer metric.
const Namespace = "Streamer"

// DimService is the dimension every metric carries: "router" or "processor".
const DimService = "Service"

// Unit is a CloudWatch metric unit.
type Unit string

// Units used by Streamer.
const (
	Count        Unit = "Count"
	Milliseconds Unit = "Milliseconds"
	Bytes        Unit = "Bytes"
)

// Metric is one named value.
type Metric struct {
	Name  string
	Unit  Unit
	Value float64
}

// Writer emits EMF records. It is safe for concurrent use; each record is
// written with a single Write call.
type Writer struct {
	mu      sync.Mutex
	out     io.Writer
	service string
	now     func() time.Time
}

// New returns a writer to out (os.Stdout in Lambda) tagging every metric with
// Service=service.
func New(out io.Writer, service string) *Writer {
	return &Writer{out: out, service: service, now: time.Now}
}

// Discard returns a writer that drops every record (tests, benchmarks).
func Discard() *Writer { return New(io.Discard, "") }

// Emit writes ms as one record with the dimensions dims (name → value) plus
// Service. Dimension names must not collide with metric names.
func (w *Writer) Emit(dims map[string]string, ms ...Metric) error {
	if len(ms) == 0 {
		return nil
	}
	rec := make(map[string]any, len(dims)+len(ms)+2)
	keys := []string{DimService}
	rec[DimService] = w.service
	for _, k := range slices.Sorted(maps.Keys(dims)) {
		if k == DimService {
			continue
		}
		keys = append(keys, k)
		rec[k] = dims[k]
	}
	defs := make([]map[string]string, len(ms))
	for i, m := range ms {
		if _, clash := rec[m.Name]; clash {
			return fmt.Errorf("emit metric %q: name clashes with a dimension", m.Name)
		}
		defs[i] = map[string]string{"Name": m.Name, "Unit": string(m.Unit)}
		rec[m.Name] = m.Value
	}
	rec["_aws"] = map[string]any{
		"Timestamp": w.now().UnixMilli(),
		"CloudWatchMetrics": []any{map[string]any{
			"Namespace":  Namespace,
			"Dimensions": [][]string{keys},
			"Metrics":    defs,
		}},
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("emit metrics: %w", err)
	}
	b = append(b, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.out.Write(b); err != nil {
		return fmt.Errorf("emit metrics: %w", err)
	}
	return nil
}

// Count emits a Count metric of value n.
func (w *Writer) Count(name string, n float64, dims map[string]string) error {
	return w.Emit(dims, Metric{Name: name, Unit: Count, Value: n})
}

// Duration emits a Milliseconds metric of d.
func (w *Writer) Duration(name string, d time.Duration, dims map[string]string) error {
	return w.Emit(dims, Metric{Name: name, Unit: Milliseconds, Value: float64(d) / float64(time.Millisecond)})
}
