package local_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/streamer-dev/streamer/functions/store"
	"github.com/streamer-dev/streamer/internal/ddblocal"
	"github.com/streamer-dev/streamer/internal/ddbtest"
	"github.com/streamer-dev/streamer/local"
)

// crashedTenant owns the requests leftByCrash writes.
const crashedTenant = "crashed"

// leftByCrash creates tables and writes n delay requests (payload) into them
// as a runtime that crashed while running them leaves them: PROCESSING under
// a dead run's expired lease, halfway, checkpoint {"step":2}. It then starts
// a runtime on those tables, stopped when the test ends, and returns it with
// the requests' keys.
func leftByCrash(ctx context.Context, t *testing.T, n int, payload string) (*local.Runtime, []string) {
	t.Helper()
	endpoint, prefix := ddbtest.Endpoint(t), local.UniquePrefix()
	tables := ddblocal.Prefixed(prefix)
	db := ddblocal.NewClient(endpoint)
	if err := ddblocal.CreateTables(ctx, db, tables); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	keys := make([]string, n)
	for i := range keys {
		id := fmt.Sprintf("r%d", i)
		keys[i] = store.RequestKey(crashedTenant, id)
		item, err := attributevalue.MarshalMap(store.Request{
			RequestID: keys[i], ID: id, TenantID: crashedTenant, UserID: "u", ConnectionID: "gone",
			Status: store.StatusProcessing, CreatedAt: now.Add(-time.Minute).UnixMilli(), Action: "delay",
			Payload: payload, Attempt: 1, LeaseOwner: "dead-run", LeaseExpiresAt: now.Add(-time.Second).UnixMilli(),
			Progress: 50, Checkpoint: `{"step":2}`,
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(tables.Requests), Item: item}); err != nil {
			t.Fatal(err)
		}
	}
	rt, err := local.Start(ctx, local.Options{Addr: "127.0.0.1:0", DynamoDBEndpoint: endpoint, TablePrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Stop() })
	return rt, keys
}

// await polls the requests until each is COMPLETED, calling seen with every
// snapshot of them, and returns the last one.
func await(ctx context.Context, t *testing.T, rt *local.Runtime, keys []string, seen func([]store.Request)) []store.Request {
	t.Helper()
	for deadline := time.Now().Add(45 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		rs := make([]store.Request, len(keys))
		done := 0
		for i, key := range keys {
			r, err := rt.Store().RequestByKey(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			rs[i] = r
			if r.Status == store.StatusCompleted {
				done++
			}
		}
		seen(rs)
		if done == len(keys) {
			return rs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests COMPLETED after the restart", done, len(keys))
		}
	}
}

// TestStartReclaimsWhatACrashLeft proves a runtime started on tables left by
// a crashed one reclaims a request the crash left PROCESSING: the crash took
// the in-memory queue, and with it the lease watchdog, so the new runtime
// re-arms it (no stream record would: the request's INSERT is long gone, and
// the stream filter drops anything but a PENDING insert). The rerun resumes
// from the stored checkpoint.
func TestStartReclaimsWhatACrashLeft(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rt, keys := leftByCrash(ctx, t, 1, `{"seconds":0.2,"steps":4}`)
	got := await(ctx, t, rt, keys, func([]store.Request) {})[0]
	var result struct {
		ResumedFromStep int `json:"resumed_from_step"`
	}
	if err := json.Unmarshal([]byte(got.Result), &result); err != nil {
		t.Fatal(err)
	}
	if got.Attempt != 2 || result.ResumedFromStep != 2 {
		t.Errorf("got attempt %d resumed from step %d, want attempt 2 resumed from step 2", got.Attempt, result.ResumedFromStep)
	}
}

// TestRetryQueueBatchesRunSideBySide proves the retry queue's batches run
// side by side, as Lambda's SQS event source mapping runs five at first: more
// requests than one batch holds are reclaimed at once, not one batch after
// the other.
func TestRetryQueueBatchesRunSideBySide(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := 2 * local.RetryQueueBatchSize
	rt, keys := leftByCrash(ctx, t, n, `{"seconds":4,"steps":4}`) // 2 s left each
	most := 0
	await(ctx, t, rt, keys, func(rs []store.Request) {
		running := 0
		for _, r := range rs {
			if r.Status == store.StatusProcessing && r.Attempt == 2 {
				running++
			}
		}
		most = max(most, running)
	})
	if most <= local.RetryQueueBatchSize {
		t.Errorf("got at most %d reclaimed requests running at once, want more than a batch (%d)", most, local.RetryQueueBatchSize)
	}
}
