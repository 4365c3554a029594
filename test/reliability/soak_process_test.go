package reliability

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/internal/ddblocal"
	"github.com/streamer-dev/streamer/internal/ddbtest"
	"github.com/streamer-dev/streamer/local"
)

// devProcess is the streamer-dev command (`make dev`) running as a child
// process on the test binary's DynamoDB Local, with tables and a JWT key of
// its own, its memory sampled from /proc.
type devProcess struct {
	*child
	secret string
	tables ddblocal.TableNames

	mu      sync.Mutex
	peakRSS int64 // highest VmRSS sampled, bytes
	stop    chan struct{}
	sampled chan struct{}
}

// startDev builds streamer-dev and starts it with env added to the test's
// environment; it stops when the test ends.
func startDev(t *testing.T, env map[string]string) *devProcess {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	prefix := local.UniquePrefix()
	p := &devProcess{secret: hex.EncodeToString(key), tables: ddblocal.Prefixed(prefix), stop: make(chan struct{}), sampled: make(chan struct{})}
	vars := []string{
		config.EnvDynamoDBEndpoint + "=" + ddbtest.Endpoint(t),
		config.EnvAddr + "=127.0.0.1:0",
		config.EnvTablePrefix + "=" + prefix,
		config.EnvJWTSecret + "=" + p.secret,
		config.EnvLogLevel + "=warn",
	}
	for k, v := range env {
		vars = append(vars, k+"="+v)
	}
	p.child = spawn(t, buildDev(t), vars...)
	t.Cleanup(func() { p.shutdown(t) })
	go p.sample()
	return p
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

// shutdown stops the sampler and the process, as Ctrl-C does.
func (p *devProcess) shutdown(t *testing.T) {
	close(p.stop)
	<-p.sampled
	p.interrupt(t)
}
