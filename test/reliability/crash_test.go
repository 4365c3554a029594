package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/streamer-dev/streamer/client"
	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/functions/store"
	"github.com/streamer-dev/streamer/internal/ddblocal"
	"github.com/streamer-dev/streamer/internal/ddbtest"
	"github.com/streamer-dev/streamer/local"
	"github.com/streamer-dev/streamer/local/localtest"
)

// crashProcessorTimeout is the child's processor timeout: it bounds each run
// (minus a 2 s safety margin) and so its lease (plus a 5 s grace), which is
// how long a crashed run holds its request.
const crashProcessorTimeout = 16 * time.Second

// crashDelay is each request's payload: 8 one-second steps, each saving a
// checkpoint, well inside a run.
const crashDelay = `{"seconds":8,"steps":8}`

// step is the step of a delay checkpoint ({"step": n}), 0 for none.
func step(checkpoint string) int {
	var cp struct {
		Step int `json:"step"`
	}
	_ = json.Unmarshal([]byte(checkpoint), &cp)
	return cp.Step
}

// awaitProgress waits until all n requests of tenant are stored and at least
// half of the open ones (one at least, unless none is) are PROCESSING with a
// checkpoint past the one they had at the last kill (atKill): a kill then
// finds them mid-run. Not all: requests queued behind a running batch (its
// stream lane, or the retry queue's pollers) start when it ends.
func awaitProgress(t *testing.T, db *dynamodb.Client, table, tenant string, n int, atKill map[string]int) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		rs, err := requestsOf(context.Background(), db, table, tenant)
		if err != nil {
			t.Fatal(err)
		}
		open, running := 0, 0
		for key, r := range rs {
			if !r.Status.Final() {
				open++
			}
			if r.Status == store.StatusProcessing && step(r.Checkpoint) > atKill[key] {
				running++
			}
		}
		if len(rs) == n && running >= (open+1)/2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests stored, %d of %d open ones running", len(rs), n, running, open)
		}
	}
}

// TestCrashRecovery runs the runtime as a child process (streamer-dev) and
// kills it with SIGKILL while its requests are PROCESSING, then restarts it
// on the same tables, as often as the size says. It proves every request is
// claimed again once its lease expires (the restarted runtime re-arms the
// watchdogs its in-memory queue lost; the stream it replays from the start
// changes nothing), resumes from the checkpoint stored when it is claimed
// again (at least the one stored at the kill), becomes COMPLETED by exactly
// one write and never changes after, nothing stays PROCESSING, and the
// client, reconnecting to the restarted runtime, gets every result. It runs
// alone: its leases are short (a 16 s processor timeout), and the other
// scenarios' load beside it at full size made runs outlive them.
func TestCrashRecovery(t *testing.T) {
	n, kills := sized(8, 50), sized(1, 3)
	endpoint, prefix, addr := ddbtest.Endpoint(t), local.UniquePrefix(), freeAddr(t)
	const secret = "crash-test-key-of-a-decent-length-0123456789"
	env := []string{
		config.EnvDynamoDBEndpoint + "=" + endpoint,
		config.EnvAddr + "=" + addr,
		config.EnvJWTSecret + "=" + secret,
		config.EnvTablePrefix + "=" + prefix,
		config.EnvProcessorTimeout + "=" + crashProcessorTimeout.String(),
		config.EnvProcessorConcurrency + "=" + fmt.Sprint(n),
		config.EnvRateLimit + "=0",
		config.EnvLogLevel + "=warn",
	}
	bin := buildDev(t)
	table := ddblocal.Prefixed(prefix).Requests
	db := ddblocal.NewClient(endpoint)
	o := outcome{Group: groupFaults, Scenario: "Crash (SIGKILL) and restart", Size: fmt.Sprintf("%d requests, %d kills", n, kills)}
	defer func() { record(t, o) }()

	p := spawn(t, bin, env...)
	tenant := localtest.Tenant("crash")
	token, err := local.Token(secret, tenant, "u", []string{"*"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, "ws://"+addr+"/", token, &client.Options{MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	results := make(chan error, n)
	acked := make([]string, n)
	for i := range n {
		id := fmt.Sprintf("crash-%03d", i)
		acked[i] = store.RequestKey(tenant, id)
		go func() {
			res, err := c.Request(ctx, "delay", json.RawMessage(crashDelay), nil, client.WithID(id))
			if err == nil && !strings.Contains(string(res), `"slept_seconds":8`) {
				err = fmt.Errorf("%s: result %s", id, res)
			}
			results <- err
		}()
	}

	atKill := map[string]int{}      // the checkpoint step at the last kill that found the request open
	midRun := map[string]bool{}     // the requests a kill found PROCESSING with a checkpoint
	killedRuns, midRunKills := 0, 0 // open and mid-run requests, summed over the kills
	for range kills {
		awaitProgress(t, db, table, tenant, n, atKill)
		p.kill(t)
		time.Sleep(time.Second) // writes the dead process had sent land
		rs, err := requestsOf(ctx, db, table, tenant)
		if err != nil {
			t.Fatal(err)
		}
		for key, r := range rs {
			if !r.Status.Final() {
				atKill[key] = step(r.Checkpoint)
				killedRuns++
			}
			if r.Status == store.StatusProcessing && atKill[key] > 0 {
				midRun[key] = true
				midRunKills++
			}
		}
		p = spawn(t, bin, env...)
	}
	reqs := settle(t, db, table, []string{tenant}, 3*time.Minute)
	tally(&o, acked, reqs)
	for range n {
		if err := <-results; err != nil {
			t.Errorf("client: %v", err)
			o.Errors++
		}
	}
	recs, err := streamRecords(ctx, endpoint, table)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for key := range reqs {
		keys[key] = true
	}
	hist := historyOf(recs, keys)
	for key, r := range reqs {
		var res struct {
			ResumedFromStep int `json:"resumed_from_step"`
		}
		_ = json.Unmarshal([]byte(r.Result), &res)
		// The last run resumes from the checkpoint stored when it claimed the
		// request (read from the stream, so exact), and that is at least the
		// checkpoint the test read after the last kill: a write the killed
		// process had in flight may still land before the claim, but no
		// stored checkpoint is lost.
		claimed := step(hist.ClaimedCheckpoint[key])
		if res.ResumedFromStep != claimed {
			t.Errorf("%s: attempt %d resumed from step %d; the checkpoint stored when it claimed the request is step %d", key, r.Attempt, res.ResumedFromStep, claimed)
			o.Errors++
		}
		if cp, open := atKill[key]; open && (res.ResumedFromStep < cp || (midRun[key] && r.Attempt < 2)) {
			t.Errorf("%s: attempt %d resumed from step %d; want it resumed from step %d or later, its checkpoint at the last kill (mid-run: %t, so a later attempt)",
				key, r.Attempt, res.ResumedFromStep, cp, midRun[key])
			o.Errors++
		}
		if hist.Finals[key] != 1 {
			t.Errorf("%s: made final by %d writes, want 1", key, hist.Finals[key])
			if hist.Finals[key] > 1 {
				o.Duplicated++
			}
		}
	}
	if hist.AfterFinal > 0 {
		t.Errorf("%d writes to requests already final", hist.AfterFinal)
		o.Errors += hist.AfterFinal
	}
	if o.Completed != n || len(reqs) != n || len(midRun) == 0 {
		t.Errorf("got %d of %d requests completed (%d stored), %d killed mid-run", o.Completed, n, len(reqs), len(midRun))
	}
	o.Notes = fmt.Sprintf("%d SIGKILLs, each followed by a restart on the same tables; the kills found %d runs open, %d of them mid-run with a checkpoint "+
		"(%d requests), each reclaimed after its lease and resumed from the checkpoint stored at its claim (at least the one read at the kill); %d stream records checked: "+
		"0 second final writes, %d writes after final",
		kills, killedRuns, midRunKills, len(midRun), hist.Records, hist.AfterFinal)
	if t.Failed() {
		t.Logf("last streamer-dev stderr:\n%s", p.logs())
	}
}
