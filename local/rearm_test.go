package local_test

import (
	"context"
	"encoding/json"
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
	endpoint, prefix := ddbtest.Endpoint(t), local.UniquePrefix()
	tables := ddblocal.Prefixed(prefix)
	db := ddblocal.NewClient(endpoint)
	if err := ddblocal.CreateTables(ctx, db, tables); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	left := store.Request{
		RequestID: store.RequestKey("crashed", "r1"), ID: "r1", TenantID: "crashed", UserID: "u", ConnectionID: "gone",
		Status: store.StatusProcessing, CreatedAt: now.Add(-time.Minute).UnixMilli(), Action: "delay",
		Payload: `{"seconds":0.2,"steps":4}`, Attempt: 1, LeaseOwner: "dead-run", LeaseExpiresAt: now.Add(-time.Second).UnixMilli(),
		Progress: 50, Checkpoint: `{"step":2}`,
	}
	item, err := attributevalue.MarshalMap(left)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(tables.Requests), Item: item}); err != nil {
		t.Fatal(err)
	}

	rt, err := local.Start(ctx, local.Options{Addr: "127.0.0.1:0", DynamoDBEndpoint: endpoint, TablePrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Stop() })
	var got store.Request
	for deadline := time.Now().Add(30 * time.Second); got.Status != store.StatusCompleted; {
		if time.Now().After(deadline) {
			t.Fatalf("request left %s after the restart, want COMPLETED", got.Status)
		}
		time.Sleep(100 * time.Millisecond)
		if got, err = rt.Store().RequestByKey(ctx, left.RequestID); err != nil {
			t.Fatal(err)
		}
	}
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
