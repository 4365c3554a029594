// Package faultproxy is a fault-injecting HTTP reverse proxy for DynamoDB, or
// any AWS JSON-protocol endpoint (operations named by the X-Amz-Target
// header). Put it between a client and DynamoDB Local to see how the client
// copes with what the real service does under load: throttling, 500s,
// latency, and the nastiest case, a write that is applied but answered with a
// 500 (an ambiguous write).
//
// Faults are drawn from a seeded RNG, so a sequential run is reproducible;
// the configuration can change while the proxy serves (Set), and counters per
// operation say what was injected (Stats).
package faultproxy

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Kind is a kind of injected fault.
type Kind string

// The faults the proxy injects, as DynamoDB answers them.
const (
	// Throttling is HTTP 400 ThrottlingException.
	Throttling Kind = "ThrottlingException"
	// ThroughputExceeded is HTTP 400 ProvisionedThroughputExceededException.
	ThroughputExceeded Kind = "ProvisionedThroughputExceededException"
	// InternalError is HTTP 500 InternalServerError.
	InternalError Kind = "InternalServerError"
)

// Kinds are all the kinds of fault, the default mix.
var Kinds = []Kind{Throttling, ThroughputExceeded, InternalError}

// status and message of each kind, as DynamoDB sends them.
var answers = map[Kind]struct {
	status  int
	message string
}{
	Throttling:         {http.StatusBadRequest, "Rate of requests exceeds the allowed throughput."},
	ThroughputExceeded: {http.StatusBadRequest, "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API."},
	InternalError:      {http.StatusInternalServerError, "Internal server error"},
}

// Defaults of Config's zero fields.
const (
	// DefaultScope is the target prefix of DynamoDB's own operations;
	// DynamoDB Streams (DynamoDBStreams_20120810.*) is out of it.
	DefaultScope = "DynamoDB_20120810."
	// DefaultNamespace prefixes the __type of an error body.
	DefaultNamespace = "com.amazonaws.dynamodb.v20120810"
)

// Config is what the proxy injects. The zero Config forwards every call
// untouched.
type Config struct {
	// Rate is the share of in-scope calls that fail, 0 to 1.
	Rate float64
	// Kinds is the mix of faults, drawn uniformly; repeat a kind to weight
	// it. Default: Kinds.
	Kinds []Kind
	// AfterForward is the share of injected faults that are sent after the
	// call was forwarded: the call takes effect, the client gets a 500
	// InternalServerError whatever Kinds says. 0 to 1.
	AfterForward float64
	// Latency is added to every in-scope call, plus a uniform random
	// duration up to Jitter.
	Latency, Jitter time.Duration
	// Scope is the X-Amz-Target prefix of the calls the proxy touches; the
	// others pass untouched. Default: DefaultScope.
	Scope string
	// Operations, when set, narrows the calls that may fail to these
	// operations (e.g. "PutItem", the target without its prefix).
	Operations []string
	// MaxFaults, when set, stops injecting after that many faults (counted
	// from Start or the last Set): 1 fails just the next matching call.
	MaxFaults int
	// Namespace prefixes the __type of error bodies. Default: DefaultNamespace.
	Namespace string
}

// withDefaults fills the zero fields with their defaults.
func (c Config) withDefaults() Config {
	if len(c.Kinds) == 0 {
		c.Kinds = Kinds
	}
	if c.Scope == "" {
		c.Scope = DefaultScope
	}
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	return c
}

// OpStats counts the calls of one operation.
type OpStats struct {
	// Calls is how many calls of the operation the proxy saw.
	Calls int
	// Faults counts the injected faults by kind; an after-forward fault
	// counts as InternalError.
	Faults map[Kind]int
	// AfterForward counts the faults sent after forwarding the call, and
	// Applied those of them DynamoDB had accepted (HTTP 200): ambiguous
	// writes that took effect.
	AfterForward, Applied int
}

// Stats are the proxy's counters, by operation (the target without its scope).
type Stats map[string]OpStats

// Faults is the number of injected faults of kind k, over all operations.
func (s Stats) Faults(k Kind) int {
	n := 0
	for _, op := range s {
		n += op.Faults[k]
	}
	return n
}

// Totals sums the counters over all operations.
func (s Stats) Totals() OpStats {
	t := OpStats{Faults: map[Kind]int{}}
	for _, op := range s {
		t.Calls += op.Calls
		t.AfterForward += op.AfterForward
		t.Applied += op.Applied
		for k, n := range op.Faults {
			t.Faults[k] += n
		}
	}
	return t
}

// Since returns the counts added after earlier, a snapshot of the same proxy.
func (s Stats) Since(earlier Stats) Stats {
	out := make(Stats, len(s))
	for op, now := range s {
		was := earlier[op]
		d := OpStats{Calls: now.Calls - was.Calls, AfterForward: now.AfterForward - was.AfterForward, Applied: now.Applied - was.Applied,
			Faults: map[Kind]int{}}
		for k, n := range now.Faults {
			if n > was.Faults[k] {
				d.Faults[k] = n - was.Faults[k]
			}
		}
		out[op] = d
	}
	return out
}

// String sums up the stats: calls, faults by kind, ambiguous writes.
func (s Stats) String() string {
	t := s.Totals()
	parts := []string{fmt.Sprintf("%d calls", t.Calls)}
	for _, k := range Kinds {
		parts = append(parts, fmt.Sprintf("%d %s", t.Faults[k], k))
	}
	parts = append(parts, fmt.Sprintf("%d after forwarding (%d applied)", t.AfterForward, t.Applied))
	return strings.Join(parts, ", ")
}

// Proxy is a running fault-injecting proxy.
type Proxy struct {
	// URL is the proxy's address, http://127.0.0.1:PORT: use it as the
	// client's endpoint.
	URL string

	forward *httputil.ReverseProxy
	srv     *http.Server

	mu       sync.Mutex
	cfg      Config
	injected int // faults since cfg was set
	rng      *rand.Rand
	stats    Stats
}

// Start serves a proxy to upstream on a free loopback port, injecting cfg
// with an RNG seeded with seed. Close stops it.
func Start(upstream string, cfg Config, seed uint64) (*Proxy, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: upstream: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{
		URL:     "http://" + ln.Addr().String(),
		forward: &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(u) }},
		cfg:     cfg.withDefaults(),
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		stats:   Stats{},
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }() // ends with ErrServerClosed on Close
	return p, nil
}

// Set replaces the configuration; calls already in flight keep the old one.
func (p *Proxy) Set(cfg Config) {
	p.mu.Lock()
	p.cfg, p.injected = cfg.withDefaults(), 0
	p.mu.Unlock()
}

// Stats returns a copy of the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(Stats, len(p.stats))
	for op, s := range p.stats {
		s.Faults = maps.Clone(s.Faults)
		out[op] = s
	}
	return out
}

// Close stops the proxy, dropping the calls in flight.
func (p *Proxy) Close() error { return p.srv.Close() }

// plan is what happens to one call.
type plan struct {
	op           string
	delay        time.Duration
	fault        Kind // "" for none
	afterForward bool
	namespace    string
}

// decide draws the call's fate and counts it.
func (p *Proxy) decide(target string) plan {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.cfg
	op, ok := strings.CutPrefix(target, c.Scope)
	if !ok {
		return plan{}
	}
	pl := plan{op: op, delay: c.Latency, namespace: c.Namespace}
	if c.Jitter > 0 {
		pl.delay += time.Duration(p.rng.Int64N(int64(c.Jitter) + 1))
	}
	s := p.stats[op]
	s.Calls++
	budget := c.MaxFaults == 0 || p.injected < c.MaxFaults
	if budget && (len(c.Operations) == 0 || slices.Contains(c.Operations, op)) && p.rng.Float64() < c.Rate {
		p.injected++
		pl.fault = c.Kinds[p.rng.IntN(len(c.Kinds))]
		if p.rng.Float64() < c.AfterForward {
			pl.fault, pl.afterForward = InternalError, true
			s.AfterForward++
		}
		if s.Faults == nil {
			s.Faults = map[Kind]int{}
		}
		s.Faults[pl.fault]++
	}
	p.stats[op] = s
	return pl
}

// applied counts an after-forward fault whose call DynamoDB accepted.
func (p *Proxy) applied(op string) {
	p.mu.Lock()
	s := p.stats[op]
	s.Applied++
	p.stats[op] = s
	p.mu.Unlock()
}

// ServeHTTP forwards a call, or answers it with a fault, after the delay.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	pl := p.decide(r.Header.Get("X-Amz-Target"))
	if pl.delay > 0 {
		t := time.NewTimer(pl.delay)
		select {
		case <-r.Context().Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	switch {
	case pl.fault == "":
		p.forward.ServeHTTP(w, r)
	case pl.afterForward:
		sink := &sink{header: http.Header{}}
		p.forward.ServeHTTP(sink, r)
		if sink.status == http.StatusOK {
			p.applied(pl.op)
		}
		writeFault(w, pl.namespace, pl.fault)
	default:
		writeFault(w, pl.namespace, pl.fault)
	}
}

// writeFault answers with kind's status, x-amzn-ErrorType header and JSON
// error body, as DynamoDB does.
func writeFault(w http.ResponseWriter, namespace string, kind Kind) {
	a := answers[kind]
	body := fmt.Sprintf(`{"__type":%q,"message":%q}`, namespace+"#"+string(kind), a.message)
	h := w.Header()
	h.Set("Content-Type", "application/x-amz-json-1.0")
	h.Set("X-Amzn-ErrorType", string(kind))
	h.Set("X-Amzn-RequestId", "faultproxy")
	w.WriteHeader(a.status)
	_, _ = w.Write([]byte(body))
}

// sink is a ResponseWriter that keeps only the status: the upstream answer of
// a call the client will never see.
type sink struct {
	header http.Header
	status int
}

// Header is the upstream answer's header, dropped.
func (s *sink) Header() http.Header { return s.header }

// Write drops the upstream answer's body.
func (s *sink) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return len(b), nil
}

// WriteHeader keeps the upstream answer's status.
func (s *sink) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
}
