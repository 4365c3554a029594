package reliability

import (
	"strings"
	"testing"
	"time"
)

// TestRenderReport checks the report's shape: groups in order, scenarios
// sorted within a group, a failed scenario marked, pipes in notes escaped.
func TestRenderReport(t *testing.T) {
	results.Lock()
	saved := results.rows
	results.rows = []outcome{
		{Group: groupLoad, Scenario: "soak", Size: "2×2", Acknowledged: 4, Completed: 4, passed: true},
		{Group: groupFaults, Scenario: "b", Notes: "a|b", passed: false},
		{Group: groupFaults, Scenario: "a", passed: true},
	}
	results.Unlock()
	t.Cleanup(func() {
		results.Lock()
		results.rows = saved
		results.Unlock()
	})
	got := renderReport(time.Now(), false)
	order := []string{"## Faults", "| a |", "| b |", "**FAIL**", "a\\|b", "## Load", "| soak | 2×2 | 4 | 4 |"}
	at := 0
	for _, want := range order {
		i := strings.Index(got[at:], want)
		if i < 0 {
			t.Fatalf("report lacks %q after offset %d:\n%s", want, at, got)
		}
		at += i
	}
	if !strings.Contains(got, "some scenarios failed") {
		t.Errorf("failed run not flagged:\n%s", got)
	}
}

// TestOverrunNamesScenarios checks that an overrun's output ends with the
// running scenarios, each with its state and where in this module it is.
func TestOverrunNamesScenarios(t *testing.T) {
	var b strings.Builder
	if code := overrun(&b, time.Minute); code == 0 {
		t.Errorf("overrun exit code 0, want a failure")
	}
	_, tail, ok := strings.Cut(b.String(), "still running after its budget of 1m0s; scenarios running:\n")
	if !ok || !strings.Contains(b.String(), "goroutine ") {
		t.Fatalf("no stacks followed by the summary:\n%s", b.String())
	}
	if want := "\tTestOverrunNamesScenarios [running] at main_test.go:"; !strings.Contains(tail, want) {
		t.Errorf("summary lacks %q:\n%s", want, tail)
	}
}
