package reliability

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// iamSummary is the line test/iam_wildcards_test.go logs with its counts.
var iamSummary = regexp.MustCompile(`iam-wildcards: statements=(\d+) allow=(\d+) deny=(\d+) star-resource=(\d+) problems=(\d+)`)

// iamReasons is the line listing the actions granted on Resource "*".
var iamReasons = regexp.MustCompile(`Resource "\*" granted only for: (.*)`)

// TestIAMResourceWildcards brings package test's check of the synthesized
// stack into the report: no IAM statement allows a wildcard action, and
// every Resource "*" is one AWS requires, with its reason. The check needs
// the CDK synth (a couple of minutes, bundling both Lambdas), which `make
// test` already runs in package test, so the suite runs it only at full size.
func TestIAMResourceWildcards(t *testing.T) {
	if !full() {
		t.Skip("at CI size package test runs TestIAMResourceWildcards itself")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-run", "^TestIAMResourceWildcards$", "-v", "./test")
	cmd.Dir = "../.." // the module root
	out, runErr := cmd.CombinedOutput()
	m := iamSummary.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no summary from package test (%v):\n%s", runErr, tail(string(out), 4000))
	}
	n := make([]int, len(m)-1)
	for i := range n {
		n[i], _ = strconv.Atoi(string(m[i+1]))
	}
	reasons := "none"
	if r := iamReasons.FindSubmatch(out); r != nil {
		reasons = strings.TrimSpace(string(r[1]))
	}
	o := outcome{Group: groupSecurity, Scenario: "IAM: no wildcard action, Resource \"*\" only where AWS requires it",
		Size: fmt.Sprintf("%d policy statements", n[0]), Errors: n[4],
		Notes: fmt.Sprintf("%d Allow, %d Deny (TLS-only resource policies may be broad); Resource \"*\" in %d Allow statements, granted only for: %s",
			n[1], n[2], n[3], reasons)}
	if runErr != nil && o.Errors == 0 {
		o.Errors = 1
	}
	record(t, o)
	if runErr != nil {
		t.Errorf("package test's TestIAMResourceWildcards failed (%v):\n%s", runErr, tail(string(out), 4000))
	}
}
