// Package localtest starts local runtimes for tests, on the DynamoDB Local
// the test binary shares (internal/ddbtest).
package localtest

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamer-dev/streamer/internal/ddbtest"
	"github.com/streamer-dev/streamer/local"
)

// Start starts a runtime with its own tables on a free port; it stops when
// the test ends. opts.Addr and TablePrefix are set here, and DynamoDBEndpoint
// unless given (a proxy in front of the shared emulator, say).
// Logs go to stderr when STREAMER_TEST_LOG is set.
func Start(t testing.TB, opts local.Options) *local.Runtime {
	t.Helper()
	rt, err := start(t, opts)
	if err != nil {
		t.Fatalf("start local runtime: %v", err)
	}
	t.Cleanup(func() {
		if err := rt.Stop(); err != nil {
			t.Errorf("stop local runtime: %v", err)
		}
	})
	return rt
}

func start(t testing.TB, opts local.Options) (*local.Runtime, error) {
	opts.Addr = "127.0.0.1:0"
	if opts.DynamoDBEndpoint == "" {
		opts.DynamoDBEndpoint = ddbtest.Endpoint(t)
	}
	opts.TablePrefix = local.UniquePrefix()
	if os.Getenv("STREAMER_TEST_LOG") != "" {
		if opts.Logger == nil {
			opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
		if opts.Metrics == nil {
			opts.Metrics = os.Stderr
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return local.Start(ctx, opts)
}

var shared struct {
	once sync.Once
	rt   *local.Runtime
	err  error
}

// Shared returns the runtime with default options that every test of the
// binary shares (it lives until the binary exits). Tests using it must keep
// to their own tenants.
func Shared(t testing.TB) *local.Runtime {
	t.Helper()
	shared.once.Do(func() { shared.rt, shared.err = start(t, local.Options{}) })
	if shared.err != nil {
		t.Fatalf("start shared local runtime: %v", shared.err)
	}
	return shared.rt
}

// Token mints a token for user in tenant on rt, failing the test on error.
func Token(t testing.TB, rt *local.Runtime, tenant, user string) string {
	t.Helper()
	tok, err := rt.Token(tenant, user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Tenant returns name with a random suffix: a tenant of its own for each run
// of a test on a shared runtime (go test -count=N).
func Tenant(name string) string {
	return name + "-" + strings.TrimSuffix(local.UniquePrefix(), "_")
}
