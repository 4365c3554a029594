package reliability

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/internal/ddblocal"
	"github.com/streamer-dev/streamer/internal/ddbtest"
	"github.com/streamer-dev/streamer/local"
)

// devProcess is the streamer-dev command (`make dev`) running as a child
// process on the test binary's DynamoDB Local, with tables and a JWT key of
// its own, so its memory can be read from /proc.
type devProcess struct {
	cmd    *exec.Cmd
	wsURL  string
	secret string
	tables ddblocal.TableNames
	stderr *bytes.Buffer

	mu      sync.Mutex
	peakRSS int64 // highest VmRSS sampled, bytes
	stop    chan struct{}
	sampled chan struct{}
}

// startDev builds streamer-dev and starts it with env added to the test's
// environment; it stops when the test ends.
func startDev(t *testing.T, env map[string]string) *devProcess {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "streamer-dev")
	build := exec.Command("go", "build", "-o", bin, "./local/cmd/streamer-dev")
	build.Dir = "../.." // the module root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build streamer-dev: %v\n%s", err, out)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	prefix := local.UniquePrefix()
	p := &devProcess{secret: hex.EncodeToString(key), tables: ddblocal.Prefixed(prefix), stderr: &bytes.Buffer{},
		stop: make(chan struct{}), sampled: make(chan struct{})}
	p.cmd = exec.Command(bin)
	p.cmd.Env = append(os.Environ(),
		config.EnvDynamoDBEndpoint+"="+ddbtest.Endpoint(t),
		config.EnvAddr+"=127.0.0.1:0",
		config.EnvTablePrefix+"="+prefix,
		config.EnvJWTSecret+"="+p.secret,
		config.EnvLogLevel+"=warn")
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stderr = &lockedWriter{w: p.stderr}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start streamer-dev: %v", err)
	}
	t.Cleanup(func() { p.shutdown(t) })
	sc := bufio.NewScanner(stdout)
	for p.wsURL == "" && sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "WebSocket"); ok {
			p.wsURL = strings.Fields(rest)[0]
		}
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }() // the metrics the Lambdas print
	if p.wsURL == "" {
		t.Fatalf("streamer-dev printed no WebSocket URL; stderr:\n%s", p.logs())
	}
	go p.sample()
	return p
}

// lockedWriter serialises writes to w, read meanwhile by logs.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// logs returns what the process wrote to stderr so far.
func (p *devProcess) logs() string {
	lw := p.cmd.Stderr.(*lockedWriter)
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return p.stderr.String()
}

// token mints a token of the process's key for user in tenant.
func (p *devProcess) token(t *testing.T, tenant, user string) string {
	t.Helper()
	tok, err := local.Token(p.secret, tenant, user, []string{"*"}, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// memory reads the process's resident set size now (VmRSS) and its peak
// (VmHWM), in bytes.
func (p *devProcess) memory() (rss, peak int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read process status: %w", err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parse %s: %w", name, err)
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			peak = kb << 10
		}
	}
	return rss, peak, nil
}

// sample records the highest VmRSS every 250 ms until shutdown: a second
// account of the peak besides the kernel's VmHWM.
func (p *devProcess) sample() {
	defer close(p.sampled)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if rss, _, err := p.memory(); err == nil {
			p.mu.Lock()
			p.peakRSS = max(p.peakRSS, rss)
			p.mu.Unlock()
		}
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
	}
}

// sampledPeak is the highest VmRSS the sampler saw.
func (p *devProcess) sampledPeak() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peakRSS
}

// shutdown stops the process as Ctrl-C does, killing it if it hangs, and
// fails the test when it did not exit cleanly.
func (p *devProcess) shutdown(t *testing.T) {
	close(p.stop)
	<-p.sampled
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("streamer-dev exit: %v; stderr:\n%s", err, tail(p.logs(), 4000))
		}
	case <-time.After(45 * time.Second):
		_ = p.cmd.Process.Kill()
		<-exited
		t.Errorf("streamer-dev did not stop within 45 s of SIGINT; stderr:\n%s", tail(p.logs(), 4000))
	}
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// mib formats a byte count in MiB.
func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
