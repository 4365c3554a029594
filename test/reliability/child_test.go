package reliability

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildDev builds the streamer-dev command (`make dev`) into a temporary
// directory and returns the binary.
func buildDev(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "streamer-dev")
	cmd := exec.Command("go", "build", "-o", bin, "./local/cmd/streamer-dev")
	cmd.Dir = "../.." // the module root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build streamer-dev: %v\n%s", err, out)
	}
	return bin
}

// freeAddr returns a free 127.0.0.1 address, for a child that restarts on
// the same one (so clients reconnect to it).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// child is one run of a streamer-dev binary as a child process.
type child struct {
	cmd     *exec.Cmd
	wsURL   string        // the WebSocket endpoint it printed
	done    chan struct{} // closed once the process is reaped
	exitErr error         // its exit status, once done
	stderr  *lockedWriter
	log     *strings.Builder // written through stderr
}

// spawn starts bin with env added to the test's environment and waits until
// it prints its WebSocket URL. It is killed when the test ends, if it still runs.
func spawn(t *testing.T, bin string, env ...string) *child {
	t.Helper()
	p := &child{cmd: exec.Command(bin), done: make(chan struct{}), log: &strings.Builder{}}
	p.stderr = &lockedWriter{w: p.log}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start streamer-dev: %v", err)
	}
	t.Cleanup(func() { p.kill(t) })
	sc := bufio.NewScanner(stdout)
	for p.wsURL == "" && sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "WebSocket"); ok && len(strings.Fields(rest)) > 0 {
			p.wsURL = strings.Fields(rest)[0]
		}
	}
	go func() {
		_, _ = io.Copy(io.Discard, stdout) // the metrics the Lambdas print
		p.exitErr = p.cmd.Wait()
		close(p.done)
	}()
	if p.wsURL == "" {
		t.Fatalf("streamer-dev printed no WebSocket URL; stderr:\n%s", p.logs())
	}
	return p
}

// logs returns the end of what the process wrote to stderr so far.
func (p *child) logs() string {
	p.stderr.mu.Lock()
	defer p.stderr.mu.Unlock()
	return tail(p.log.String(), 4000)
}

// kill ends the process with SIGKILL, as a crash would, and reaps it.
func (p *child) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("kill streamer-dev: %v", err)
	}
	<-p.done
}

// interrupt stops the process as Ctrl-C does, killing it if it hangs, and
// fails the test when it did not exit cleanly.
func (p *child) interrupt(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
		if p.exitErr != nil {
			t.Errorf("streamer-dev exit: %v; stderr:\n%s", p.exitErr, p.logs())
		}
	case <-time.After(45 * time.Second):
		p.kill(t)
		t.Errorf("streamer-dev did not stop within 45 s of SIGINT; stderr:\n%s", p.logs())
	}
}

// memory reads the process's resident set size now (VmRSS) and its peak
// (VmHWM), in bytes.
func (p *child) memory() (rss, peak int64, err error) {
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

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// mib formats a byte count in MiB.
func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
