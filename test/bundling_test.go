package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	streamer "github.com/streamer-dev/streamer/constructs"
)

// brokenEntry writes a main package that does not compile, inside this
// module (the working directory's module builds custom entries); the leading
// underscore keeps it out of ./... patterns that run meanwhile.
func brokenEntry(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp(".", "_broken-entry-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	src := "package main\n\nfunc main() { notDefined() }\n"
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return "./" + dir
}

func synthWithRouter(t *testing.T, entry string, context map[string]any) {
	t.Helper()
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir()), Context: &context})
	stack := awscdk.NewStack(app, jsii.String("Bundling"), nil)
	streamer.NewStreamerConstruct(stack, jsii.String("Streamer"), &streamer.StreamerConstructProps{RouterEntry: jsii.String(entry)})
	app.Synth(nil)
}

// TestBundlingSkipped checks that a stack CDK does not bundle (cdk deploy
// OtherStack --exclusively) never runs go build: a broken entry synthesizes.
func TestBundlingSkipped(t *testing.T) {
	synthWithRouter(t, brokenEntry(t), map[string]any{"aws:cdk:bundling-stacks": []any{}})
}

// TestBundlingFailureNamesTheError checks that a compile error stops the synth
// with the compiler's message instead of falling back to Docker. The synth runs
// in a child test process: a failed callback leaves the jsii kernel unfit for
// the other tests.
func TestBundlingFailureNamesTheError(t *testing.T) {
	if entry := os.Getenv("STREAMER_TEST_BROKEN_ENTRY"); entry != "" {
		synthWithRouter(t, entry, map[string]any{})
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestBundlingFailureNamesTheError$", "-test.count=1")
	cmd.Env = append(os.Environ(), "STREAMER_TEST_BROKEN_ENTRY="+brokenEntry(t))
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("synth with a broken entry succeeded:\n%s", out)
	}
	if !strings.Contains(string(out), "notDefined") {
		t.Errorf("synth failed without the compiler's message about notDefined:\n%s", out)
	}
}
