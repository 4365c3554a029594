package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/functions/protocol"
	"github.com/streamer-dev/streamer/functions/store"
	"github.com/streamer-dev/streamer/local"
	"github.com/streamer-dev/streamer/local/localtest"
)

// TestLoad sends 25 async requests on each of 20 connections at once: every
// request is acknowledged once and completed once, and every item ends
// COMPLETED after one attempt.
func TestLoad(t *testing.T) {
	t.Parallel()
	const conns, perConn = 20, 25
	tenant := localtest.Tenant("e2e-load")
	rt := localtest.Start(t, local.Options{Env: map[string]string{config.EnvRateLimit: "0", config.EnvTenantMaxInflight: "100000"}})
	clients := make([]*conn, conns)
	for i := range clients {
		clients[i] = connect(t, rt, tenant, fmt.Sprintf("user-%d", i))
	}
	var wg sync.WaitGroup
	counts := make([]map[string][2]int, conns) // id → [acks, completes]
	for i, c := range clients {
		counts[i] = map[string][2]int{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perConn {
				c.send(message{Action: "delay", ID: fmt.Sprintf("load-%d-%d", i, j), Payload: map[string]any{"seconds": 0.05}})
			}
			for done := 0; done < perConn; {
				f, err := c.read()
				if err != nil {
					t.Errorf("connection %d: %v", i, err)
					return
				}
				n := counts[i][f.RequestID]
				switch f.Type {
				case protocol.TypeAcknowledgment:
					n[0]++
				case protocol.TypeComplete:
					n[1]++
					done++
					if !f.Success {
						t.Errorf("%s failed: %+v", f.RequestID, f.Error)
					}
				case protocol.TypeError:
					t.Errorf("%s: error %+v", f.RequestID, f.Error)
					done++
				}
				counts[i][f.RequestID] = n
			}
		}()
	}
	wg.Wait()
	for i := range clients {
		for j := range perConn {
			id := fmt.Sprintf("load-%d-%d", i, j)
			if got := counts[i][id]; got != [2]int{1, 1} {
				t.Errorf("%s: %d acknowledgments and %d completes, want one each", id, got[0], got[1])
			}
			if r := request(t, rt, tenant, id); r.Status != store.StatusCompleted || r.Attempt != 1 {
				t.Errorf("%s stored %s after %d attempts", id, r.Status, r.Attempt)
			}
		}
	}
	if n, err := rt.Store().CountTenantInflight(context.Background(), tenant); err != nil || n != 0 {
		t.Errorf("in-flight %d (%v) after the load, want 0", n, err)
	}
}
