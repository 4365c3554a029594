package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/functions/protocol"
	"github.com/streamer-dev/streamer/functions/schema"
	"github.com/streamer-dev/streamer/local"
	"github.com/streamer-dev/streamer/local/localtest"
)

// benchResult is one row of benchmarks/local-runtime.md.
type benchResult struct {
	name     string
	p50, p99 time.Duration
	put      [2]time.Duration // PutItem p50, p99 measured alongside
	perSec   float64          // throughput rows
}

// BenchmarkLocalRuntime measures the local runtime end to end through real
// WebSocket connections, each figure next to one PutItem on the same DynamoDB
// Local, and writes benchmarks/local-runtime.md.
func BenchmarkLocalRuntime(b *testing.B) {
	rt := localtest.Start(b, local.Options{Env: map[string]string{config.EnvRateLimit: "0", config.EnvTenantMaxInflight: "100000"}})
	var results []benchResult
	results = append(results, runLatency(b, rt, "echo round trip", func(c *conn, i int) time.Duration {
		id := fmt.Sprintf("echo-%d", i)
		start := time.Now()
		c.send(message{Action: "echo", ID: id, Payload: map[string]int{"i": i}})
		c.until(id, protocol.TypeResponse)
		return time.Since(start)
	}))
	results = append(results, runLatency(b, rt, "async acknowledgment", func(c *conn, i int) time.Duration {
		id := fmt.Sprintf("ack-%d-%d", time.Now().UnixNano(), i)
		start := time.Now()
		c.send(message{Action: "delay", ID: id, Payload: map[string]any{"seconds": 0}})
		c.until(id, protocol.TypeAcknowledgment)
		d := time.Since(start)
		c.until(id, protocol.TypeComplete)
		return d
	}))
	results = append(results, runLatency(b, rt, "async submit → complete (no-op)", func(c *conn, i int) time.Duration {
		id := fmt.Sprintf("done-%d-%d", time.Now().UnixNano(), i)
		start := time.Now()
		c.send(message{Action: "delay", ID: id, Payload: map[string]any{"seconds": 0}})
		c.until(id, protocol.TypeComplete)
		return time.Since(start)
	}))
	results = append(results, runThroughput(b, rt, 50))
	if err := writeReport("../../benchmarks/local-runtime.md", results); err != nil {
		b.Fatal(err)
	}
}

// runLatency runs op b.N times on one connection, with one PutItem after each
// op, and reports both distributions.
func runLatency(b *testing.B, rt *local.Runtime, name string, op func(c *conn, i int) time.Duration) benchResult {
	res := benchResult{name: name}
	b.Run(strings.Join(strings.Fields(name)[:2], "-"), func(b *testing.B) {
		c := connect(b, rt, "bench-"+strings.Fields(name)[0], "bench")
		ops, puts := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
		for i := 0; b.Loop(); i++ {
			ops = append(ops, op(c, i))
			puts = append(puts, putItem(b, rt, i))
		}
		res.p50, res.p99 = percentiles(ops)
		res.put[0], res.put[1] = percentiles(puts)
		b.ReportMetric(float64(res.p50.Microseconds()), "p50-µs")
		b.ReportMetric(float64(res.p99.Microseconds()), "p99-µs")
		b.ReportMetric(float64(res.put[0].Microseconds()), "putitem-p50-µs")
		b.ReportMetric(float64(res.put[1].Microseconds()), "putitem-p99-µs")
	})
	return res
}

// runThroughput sends b.N echo messages spread over n connections at once.
func runThroughput(b *testing.B, rt *local.Runtime, n int) benchResult {
	res := benchResult{name: fmt.Sprintf("echo throughput, %d connections", n)}
	b.Run(fmt.Sprintf("throughput-%d", n), func(b *testing.B) {
		conns := make([]*conn, n)
		for i := range conns {
			conns[i] = connect(b, rt, fmt.Sprintf("bench-tp-%d", i), "bench")
		}
		puts := make([]time.Duration, 0, 64)
		for i := range 64 {
			puts = append(puts, putItem(b, rt, i))
		}
		b.ResetTimer()
		start := time.Now()
		var wg sync.WaitGroup
		for w, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < b.N; i += n {
					id := fmt.Sprintf("tp-%d", i)
					c.send(message{Action: "echo", ID: id})
					c.until(id, protocol.TypeResponse)
				}
			}()
		}
		wg.Wait()
		res.perSec = float64(b.N) / time.Since(start).Seconds()
		res.put[0], res.put[1] = percentiles(puts)
		b.ReportMetric(res.perSec, "msgs/s")
		b.ReportMetric(1/res.put[0].Seconds(), "putitem-serial/s")
	})
	return res
}

// putItem writes one item the size of a small request to the requests table.
func putItem(b *testing.B, rt *local.Runtime, i int) time.Duration {
	start := time.Now()
	_, err := rt.DynamoDB().PutItem(context.Background(), &dynamodb.PutItemInput{
		TableName: aws.String(rt.Tables().Requests),
		Item: map[string]types.AttributeValue{
			schema.AttrRequestID: &types.AttributeValueMemberS{Value: fmt.Sprintf("bench#put-%d", i)},
			schema.AttrStatus:    &types.AttributeValueMemberS{Value: "COMPLETED"},
			"Payload":            &types.AttributeValueMemberS{Value: `{"i":1}`},
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)*50/100], s[min(len(s)-1, len(s)*99/100)]
}

// writeReport writes the markdown table with the machine noted.
func writeReport(path string, rows []benchResult) error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# Local runtime benchmarks\n\n")
	fmt.Fprintf(&sb, "Written by `make bench` (BenchmarkLocalRuntime in test/e2e) on %s.\n\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&sb, "Machine: %s, %d logical CPUs, %s/%s, %s. DynamoDB Local (in memory) runs on the same machine.\n\n",
		cpuModel(), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintf(&sb, "Every figure goes through a real WebSocket connection, the API Gateway-like gateway, the real router and\n"+
		"processor and DynamoDB Local; \"PutItem\" is one PutItem of a small item on the same DynamoDB Local, measured\n"+
		"alongside, so the figures can be read relative to the database's own latency on this machine.\n\n")
	fmt.Fprintf(&sb, "| Measure | p50 | p99 | PutItem p50 | PutItem p99 | p50 / PutItem p50 |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		if r.perSec > 0 {
			fmt.Fprintf(&sb, "| %s | %.0f messages/s | | %s | %s | PutItem serial: %.0f/s |\n", r.name, r.perSec, ms(r.put[0]), ms(r.put[1]), 1/r.put[0].Seconds())
			continue
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s | %.1f× |\n", r.name, ms(r.p50), ms(r.p99), ms(r.put[0]), ms(r.put[1]), float64(r.p50)/float64(r.put[0]))
	}
	sb.WriteString("\nThe submit → complete latency of a no-op async action is dominated by the stream poller's wait: it polls an\n" +
		"idle shard every 50 ms (Lambda's event source mapping polls a shard about four times a second, so expect more in AWS).\n")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
