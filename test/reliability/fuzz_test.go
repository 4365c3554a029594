package reliability

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// fuzzTargets are the fuzz targets the suite runs: the message parser, the
// token parser and the stream-record decoder.
var fuzzTargets = []struct{ pkg, name string }{
	{"./functions/protocol", "FuzzParse"},
	{"./functions/auth", "FuzzVerify"},
	{"./functions/processing", "FuzzRequestFromImage"},
}

var (
	// fuzzExecs matches go test -fuzz's progress lines' exec count.
	fuzzExecs = regexp.MustCompile(`execs: (\d+)`)
	// fuzzCrasher matches the line naming the input that failed.
	fuzzCrasher = regexp.MustCompile(`Failing input written to (\S+)`)
)

// TestFuzzTargets runs each fuzz target on a bounded number of inputs, one
// after another, as `go test -fuzz` subprocesses. A crasher fails the test
// and is shown: go test has written it to the package's testdata/fuzz, where
// it stays as a seed once the bug is fixed.
func TestFuzzTargets(t *testing.T) {
	// A count of inputs, not a time: -fuzztime with a duration races Go's
	// fuzzing coordinator (go.dev/issue/75804, unfixed in Go 1.26), which then
	// now and then fails a run that found nothing with "context deadline
	// exceeded", mostly on a busy machine. A count has no deadline. At CI size
	// a target takes seconds; at full size, about two minutes for the slowest
	// on 2 cores.
	execCount := sized(200_000, 3_000_000)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	o := outcome{Group: groupInput, Scenario: "fuzzing", Size: fmt.Sprintf("%d targets × %d inputs", len(fuzzTargets), execCount)}
	var notes []string
	for _, ft := range fuzzTargets {
		began := time.Now()
		execs, crasher, err := fuzz(root, ft.pkg, ft.name, execCount)
		switch {
		case crasher != "":
			o.Errors++
			t.Errorf("%s found a crasher, written to %s:\n%s", ft.name, crasher, crasherText(root, ft.pkg, crasher))
			notes = append(notes, ft.name+": crasher")
		case err != nil:
			o.Errors++
			t.Errorf("%s: %v", ft.name, err)
			notes = append(notes, ft.name+": failed")
		default:
			notes = append(notes, fmt.Sprintf("%s %s execs in %s", ft.name, execs, time.Since(began).Round(time.Second)))
		}
	}
	o.Notes = strings.Join(notes, ", ")
	if o.Errors == 0 {
		o.Notes += "; no crasher"
	}
	record(t, o)
}

// fuzz runs target of pkg (relative to the module root) on execCount inputs
// and returns the execs reported last and the failing input's path, if any.
func fuzz(root, pkg, target string, execCount int) (execs, crasher string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), sized(5*time.Minute, 15*time.Minute)) // compiling included
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-fuzz", "^"+target+"$", "-fuzztime", fmt.Sprintf("%dx", execCount), pkg)
	cmd.Dir = root
	out, runErr := cmd.CombinedOutput()
	execs = "0"
	if m := fuzzExecs.FindAllSubmatch(out, -1); len(m) > 0 {
		execs = string(m[len(m)-1][1])
	}
	if m := fuzzCrasher.FindSubmatch(out); m != nil {
		crasher = string(m[1])
	}
	if runErr != nil {
		return execs, crasher, fmt.Errorf("go test -fuzz %s %s: %w\n%s", target, pkg, runErr, out)
	}
	return execs, crasher, nil
}

// crasherText returns the failing input go test wrote, for the test log.
func crasherText(root, pkg, path string) string {
	if !filepath.IsAbs(path) {
		path = filepath.Join(root, pkg, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	return string(data)
}
