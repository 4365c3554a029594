package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/streamer-dev/streamer/functions/store"
	"github.com/streamer-dev/streamer/internal/ddblocal"
	"github.com/streamer-dev/streamer/internal/ddbtest"
	"github.com/streamer-dev/streamer/local/localtest"
)

// soakPeakLimit is the generous bound on the runtime's peak RSS.
const soakPeakLimit = 1536 << 20

// TestSoak runs many WebSocket clients against streamer-dev, a child process
// with the default limits: each sends async requests (delay with progress;
// every tenth a permanent fail), cancels a share of them and a quarter drop
// their connection once and recover on a new one with a resend, status and
// subscribe; at the end each cancels one of its completed requests. Every acknowledged request ends exactly once in the state it
// must (COMPLETED; FAILED only when designed to; CANCELLED only when the
// cancel was accepted), as the client saw it and as DynamoDB holds it: none
// lost, duplicated or stuck; and the runtime's peak RSS stays bounded.
func TestSoak(t *testing.T) {
	conns, perConn := sized(20, 200), sized(10, 50)
	const connsPerTenant = 20
	dev := startDev(t, nil)
	startRSS, _, err := dev.memory()
	if err != nil {
		t.Fatal(err)
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	tenants := make([]string, (conns+connsPerTenant-1)/connsPerTenant)
	for i := range tenants {
		tenants[i] = localtest.Tenant(fmt.Sprintf("soak%d", i))
	}
	clients := make([]*soakClient, conns)
	for i := range clients {
		tenant := tenants[i/connsPerTenant]
		clients[i] = newSoakClient(dev.wsURL, tenant, dev.token(t, tenant, fmt.Sprintf("user-%d", i)), fmt.Sprintf("soak-%d", i), perConn, seed+uint64(i))
	}

	ctx, cancel := context.WithTimeout(context.Background(), sized(4*time.Minute, 50*time.Minute))
	defer cancel()
	began := time.Now()
	errs := make([]error, conns)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() { errs[i] = c.run(ctx) })
	}
	wg.Wait()
	elapsed := time.Since(began)

	stored := settle(t, ddblocal.NewClient(ddbtest.Endpoint(t)), dev.tables.Requests, tenants, time.Minute)
	endRSS, peak, err := dev.memory()
	if err != nil {
		t.Fatal(err)
	}
	a := auditSoak(clients, errs, stored)
	o := a.outcome
	o.Group, o.Scenario = groupLoad, "Soak: async requests with progress, cancellations and reconnects"
	o.Size = fmt.Sprintf("%d connections × %d requests", conns, perConn)
	o.Notes = fmt.Sprintf("streamer-dev as a child process (default rate and in-flight limits). Peak RSS %s (VmHWM; %s sampled), "+
		"%s at start, %s after the load. %.0f requests/s (%d in %s). %d RATE_LIMITED answers retried with the same id. "+
		"%d cancelled, %d cancels after completion; %d reconnects; %d progress frames; %d final frames repeated after a re-follow; %d runs started more than once.",
		mib(peak), mib(dev.sampledPeak()), mib(startRSS), mib(endRSS), float64(o.Acknowledged)/elapsed.Seconds(), o.Acknowledged,
		elapsed.Round(time.Second), a.rateLimited, a.cancelled, a.lateCancels, a.reconnects, a.progress, a.repeated, a.reruns)
	record(t, o)
	t.Log(o.Notes)
	for _, p := range a.problems {
		t.Error(p)
	}
	if o.Lost+o.Duplicated+o.Stuck+o.Errors > 0 {
		t.Errorf("lost %d, duplicated %d, stuck %d, errors %d; want none", o.Lost, o.Duplicated, o.Stuck, o.Errors)
	}
	if peak > soakPeakLimit {
		t.Errorf("peak RSS %s, over the bound of %s", mib(peak), mib(soakPeakLimit))
	}
}

// soakAudit is what the soak's clients and DynamoDB show, counted.
type soakAudit struct {
	outcome
	rateLimited, cancelled, lateCancels, reconnects, progress int
	// repeated counts final frames sent twice on a connection that followed
	// the request again (the router's documented overlap: twice, never zero).
	repeated int
	// reruns counts requests whose handler was started more than once.
	reruns   int
	problems []string
}

// problem counts an error and keeps the first few for the log.
func (a *soakAudit) problem(format string, args ...any) {
	a.Errors++
	if len(a.problems) < 20 {
		a.problems = append(a.problems, fmt.Sprintf(format, args...))
	}
}

// auditSoak checks every request of the clients against what they must
// have ended as and what DynamoDB holds (stored, by request key).
func auditSoak(clients []*soakClient, errs []error, stored map[string]store.Request) soakAudit {
	var a soakAudit
	var acked []string
	known := map[string]bool{}
	for i, c := range clients {
		if errs[i] != nil {
			a.problem("client %d: %v", i, errs[i])
		}
		for _, u := range c.unexpected {
			a.problem("client %d: %s", i, u)
		}
		a.rateLimited += c.rateLimited
		a.reconnects += c.conn - 1
		for _, r := range c.reqs {
			key := store.RequestKey(c.tenant, r.id)
			known[key] = true
			a.progress += r.progress
			switch r.cancel {
			case cancelDone:
				a.cancelled++
			case cancelLate:
				a.lateCancels++
			}
			if !r.acked {
				a.problem("%s: never acknowledged", r.id)
				continue
			}
			acked = append(acked, key)
			s, ok := stored[key]
			if !ok {
				continue // lost: tally counts it
			}
			if s.Attempt > 1 {
				a.reruns++
			}
			if s.Status.Final() && s.Status != r.expected() {
				a.problem("%s (%s, cancel %d): stored %s, want %s", r.id, r.action, r.cancel, s.Status, r.expected())
			}
			if r.outcome != s.Status {
				a.problem("%s: the client saw %q, DynamoDB holds %s", r.id, r.outcome, s.Status)
			}
			if r.conflicts > 0 {
				a.problem("%s: %d final frames or statuses disagree", r.id, r.conflicts)
			}
			for conn, n := range r.finals {
				switch {
				case n <= 1:
				case r.refollowed[conn]:
					a.repeated += n - 1
				default:
					a.Duplicated++
				}
			}
		}
	}
	for key := range stored {
		if !known[key] {
			a.problem("%s: stored, but no client sent it", key)
		}
	}
	tally(&a.outcome, acked, stored)
	if more := a.Errors - len(a.problems); more > 0 {
		a.problems = append(a.problems, fmt.Sprintf("… and %d more", more))
	}
	return a
}
