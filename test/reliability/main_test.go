// Package reliability proves Streamer's promises under faults, bad input and
// load, through the local runtime and DynamoDB Local. Every scenario records
// its size and outcome counts; the suite writes them to RELIABILITY.md.
//
// Sizes: `make test` runs the suite at CI size; `make test-reliability` sets
// STREAMER_RELIABILITY=full and STREAMER_RELIABILITY_REPORT=RELIABILITY.md.
package reliability

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Environment variables of the suite.
const (
	// envSize selects the suite's size: "full", or CI size when unset.
	envSize = "STREAMER_RELIABILITY"
	// envReport is the file the report is written to; none when unset.
	envReport = "STREAMER_RELIABILITY_REPORT"
)

// full reports whether the suite runs at full size (make test-reliability).
func full() bool { return os.Getenv(envSize) == "full" }

// sized returns ci at CI size and full at full size.
func sized[T any](ci, fullSize T) T {
	if full() {
		return fullSize
	}
	return ci
}

// Report groups, in the order the report lists them.
const (
	groupFaults   = "Faults"
	groupInput    = "Bad input"
	groupLoad     = "Load"
	groupSecurity = "Infrastructure security"
)

// outcome is one scenario's row in the report. Lost: acknowledged and never
// final. Duplicated: a second completion (run, final frame or final write).
// Stuck: left non-final (PROCESSING, RETRYING, PENDING) at the end. Errors:
// anything the scenario did not expect.
type outcome struct {
	Group    string
	Scenario string
	// Size says what was sent, e.g. "200 connections × 50 requests".
	Size         string
	Acknowledged int
	Completed    int
	Failed       int
	Cancelled    int
	Lost         int
	Duplicated   int
	Stuck        int
	Errors       int
	// Notes adds what the counts do not say (faults injected, peak RSS...).
	Notes string

	passed bool
}

var results struct {
	sync.Mutex
	rows []outcome
}

// record adds o to the report. Call it once per scenario, after the counts
// are known; whether the test passed is read when it ends.
func record(t *testing.T, o outcome) {
	t.Helper()
	t.Cleanup(func() {
		o.passed = !t.Failed()
		results.Lock()
		results.rows = append(results.rows, o)
		results.Unlock()
	})
}

func TestMain(m *testing.M) {
	began := time.Now()
	code := m.Run()
	if path := os.Getenv(envReport); path != "" {
		if err := os.WriteFile(path, []byte(renderReport(began, code == 0)), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "write reliability report: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// renderReport renders the collected rows as Markdown, grouped and sorted.
func renderReport(began time.Time, passed bool) string {
	results.Lock()
	rows := slices.Clone(results.rows)
	results.Unlock()
	groups := []string{groupFaults, groupInput, groupLoad, groupSecurity}
	slices.SortStableFunc(rows, func(a, b outcome) int {
		if d := slices.Index(groups, a.Group) - slices.Index(groups, b.Group); d != 0 {
			return d
		}
		return strings.Compare(a.Scenario, b.Scenario)
	})
	size := "CI"
	if full() {
		size = "full"
	}
	verdict := "every scenario passed"
	if !passed {
		verdict = "**some scenarios failed**"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Reliability report\n\n")
	fmt.Fprintf(&b, "Written by the reliability suite (`test/reliability`); regenerate it with `make test-reliability`. Do not edit by hand.\n\n")
	fmt.Fprintf(&b, "Run: %s, size %s, %s/%s, %d CPUs, %s, %s in all; %s.\n\n",
		began.UTC().Format("2006-01-02 15:04 MST"), size, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(),
		time.Since(began).Round(time.Second), verdict)
	b.WriteString("Lost: acknowledged but never final. Duplicated: completed (run to completion, final frame or final write) more than once. " +
		"Stuck: left PENDING, RETRYING or PROCESSING. Errors: anything the scenario did not expect.\n")
	group := ""
	for _, r := range rows {
		if r.Group != group {
			group = r.Group
			fmt.Fprintf(&b, "\n## %s\n\n", group)
			b.WriteString("| Scenario | Size | Acked | Completed | Failed | Cancelled | Lost | Duplicated | Stuck | Errors | Result | Notes |\n")
			b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|---|\n")
		}
		result := "pass"
		if !r.passed {
			result = "**FAIL**"
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %d | %d | %d | %d | %s | %s |\n",
			r.Scenario, r.Size, r.Acknowledged, r.Completed, r.Failed, r.Cancelled, r.Lost, r.Duplicated, r.Stuck, r.Errors,
			result, strings.ReplaceAll(r.Notes, "|", "\\|"))
	}
	return b.String()
}
