// Package reliability proves Streamer's promises under faults, bad input and
// load, through the local runtime and DynamoDB Local. Every scenario records
// its size and outcome counts; the suite writes them to RELIABILITY.md.
//
// Sizes: `make test` runs the suite at CI size; `make test-reliability` sets
// STREAMER_RELIABILITY=full and STREAMER_RELIABILITY_REPORT=RELIABILITY.md.
package reliability

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
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

// budget bounds the suite's run: past it, the watchdog ends the run with
// the stacks of the scenarios still running. It is shorter than the go
// test -timeout of the Makefile, whose own dump starts with the names of
// the running tests, which a CI log that keeps only the tail loses.
func budget() time.Duration { return sized(20*time.Minute, 80*time.Minute) }

func TestMain(m *testing.M) {
	began := time.Now()
	limit := budget()
	watchdog := time.AfterFunc(limit, func() { os.Exit(overrun(os.Stderr, limit)) })
	code := m.Run()
	watchdog.Stop()
	if path := os.Getenv(envReport); path != "" {
		if err := os.WriteFile(path, []byte(renderReport(began, code == 0)), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "write reliability report: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// overrun writes every goroutine's stack to w, then, last so that the tail
// of a log shows it, which scenarios are still running and where they wait.
// It returns the exit code of a run that overran its budget.
func overrun(w io.Writer, budget time.Duration) int {
	var stacks bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&stacks, 2)
	_, _ = w.Write(stacks.Bytes())
	fmt.Fprintf(w, "\nreliability suite: still running after its budget of %s; scenarios running:\n", budget)
	for _, s := range runningScenarios(stacks.String()) {
		fmt.Fprintf(w, "\t%s\n", s)
	}
	return 2
}

// scenarioFrame matches a stack frame of a test function of this package,
// goroutineState the state in a goroutine's header.
var (
	scenarioFrame  = regexp.MustCompile(`reliability\.(Test\w+)\(`)
	goroutineState = regexp.MustCompile(`^goroutine \d+ .*\[(.*)\]:`)
)

// runningScenarios returns, from a goroutine dump (debug=2), each test
// function of this package on a stack, with the goroutine's state and the
// innermost frame of this module, e.g. "TestX [sync.WaitGroup.Wait, 3
// minutes] at gateway.go:134".
func runningScenarios(dump string) []string {
	var out []string
	for g := range strings.SplitSeq(dump, "\n\n") {
		m := scenarioFrame.FindStringSubmatch(g)
		if m == nil {
			continue
		}
		lines := strings.Split(g, "\n")
		state := ""
		if sm := goroutineState.FindStringSubmatch(lines[0]); sm != nil {
			state = sm[1]
		}
		where := "?"
		for i, line := range lines[:len(lines)-1] {
			if strings.HasPrefix(line, "github.com/streamer-dev/streamer/") {
				file, _, _ := strings.Cut(strings.TrimSpace(lines[i+1]), " ")
				where = filepath.Base(file)
				break
			}
		}
		out = append(out, fmt.Sprintf("%s [%s] at %s", m[1], state, where))
	}
	slices.Sort(out)
	return slices.Compact(out)
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
