package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/streamer-dev/streamer/client"
)

// TestMain lets the test binary play the command: a child started with
// STREAMER_DEV_MAIN=1 runs main.
func TestMain(m *testing.M) {
	if os.Getenv("STREAMER_DEV_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// children lists the pids whose parent is pid.
func children(pid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// TestDevRunsAndStopsCleanly starts the command as `make dev` does (with
// -metrics), uses the printed URL and token, then stops it with SIGINT: it
// exits 0, it printed the Lambdas' EMF records, and DynamoDB Local, which it
// started, is gone.
func TestDevRunsAndStopsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts DynamoDB Local")
	}
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-metrics")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Dir = "../../.." // the checkout root, where .cache/dynamodb-local lives
	cmd.Env = append(os.Environ(), "STREAMER_DEV_MAIN=1", "STREAMER_ADDR=127.0.0.1:0", "DYNAMODB_ENDPOINT=", "STREAMER_LOG_LEVEL=warn")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	var wsURL, token string
	tokenRe := regexp.MustCompile(`^\s+(eyJ[\w-]+\.[\w-]+\.[\w-]+)\s*$`)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && (wsURL == "" || token == "") {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "WebSocket"); ok {
			wsURL = strings.Fields(rest)[0]
		}
		if m := tokenRe.FindStringSubmatch(line); m != nil {
			token = m[1]
		}
	}
	emf := make(chan int, 1)
	go func() {
		n := 0
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"Namespace":"Streamer"`) {
				n++
			}
		}
		emf <- n
	}()
	if wsURL == "" || token == "" {
		t.Fatalf("no WebSocket URL or token printed (url %q); stderr:\n%s", wsURL, stderr.String())
	}
	emulators := children(cmd.Process.Pid)
	if len(emulators) == 0 {
		t.Fatal("no DynamoDB Local child process")
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, wsURL, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Request(ctx, "delay", map[string]any{"seconds": 0.1}, nil); err != nil || !strings.Contains(string(got), "slept_seconds") {
		t.Errorf("delay through make dev: %s %v", got, err)
	}
	_ = c.Close()

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if n := <-emf; n == 0 { // stdout ends when the command exits
		t.Error("-metrics: no EMF record on stdout")
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGINT: %v", err)
	}
	for _, pid := range emulators {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("DynamoDB Local (pid %d) still runs after the command stopped", pid)
		}
	}
}
