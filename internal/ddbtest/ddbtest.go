// Package ddbtest gives tests a DynamoDB Local with Streamer's tables.
//
// All tests of one test binary share one emulator: the one at $DYNAMODB_ENDPOINT
// (make test starts one for the whole run) or else one started on first use.
// Each call to Tables creates fresh tables under a unique prefix, so tests never
// see each other's items and may run in parallel.
package ddbtest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/internal/ddblocal"
)

var (
	once     sync.Once
	endpoint string
	startErr error
	seq      atomic.Int64
)

// Endpoint returns the URL of the shared DynamoDB Local, starting it on first use.
// The emulator started here lives until the test binary exits.
func Endpoint(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		if ep := os.Getenv(config.EnvDynamoDBEndpoint); ep != "" {
			endpoint = ep
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		inst, err := ddblocal.Start(ctx)
		if err != nil {
			startErr = err
			return
		}
		endpoint = inst.Endpoint
	})
	if startErr != nil {
		t.Fatalf("dynamodb local: %v", startErr)
	}
	return endpoint
}

// Env is a DynamoDB Local endpoint with a fresh set of tables.
type Env struct {
	Endpoint string
	Client   *dynamodb.Client
	Tables   ddblocal.TableNames
}

// Tables creates the three tables under a prefix unique to this call.
func Tables(t testing.TB) Env {
	t.Helper()
	ep := Endpoint(t)
	client := ddblocal.NewClient(ep)
	names := ddblocal.Prefixed(fmt.Sprintf("t%d_%d_", os.Getpid(), seq.Add(1)))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := ddblocal.CreateTables(ctx, client, names); err != nil {
		t.Fatalf("create tables: %v", err)
	}
	return Env{Endpoint: ep, Client: client, Tables: names}
}
