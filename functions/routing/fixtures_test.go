package routing_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

// TestRecordedEvents drives the router with API Gateway WebSocket events in
// their recorded shape: $connect (token in the query string), a $default
// message and $disconnect.
func TestRecordedEvents(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	load := func(name string) events.APIGatewayWebsocketProxyRequest {
		raw, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		raw = []byte(strings.ReplaceAll(string(raw), "TOKEN", token(t, nil)))
		var ev events.APIGatewayWebsocketProxyRequest
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return ev
	}
	const conn = "Cx9QXeHADoECJfg="
	ctx := context.Background()
	for _, tt := range []struct {
		give     string
		wantCode int
	}{
		{"connect.json", 200},
		{"default.json", 200},
		{"disconnect.json", 200},
	} {
		resp, err := hs.h.Handle(ctx, load(tt.give))
		if err != nil || resp.StatusCode != tt.wantCode {
			t.Fatalf("%s: status %d, %v; want %d", tt.give, resp.StatusCode, err, tt.wantCode)
		}
	}
	frames := hs.conns.Frames(t, conn)
	if len(frames) != 1 || frames[0]["type"] != "response" || frames[0]["request_id"] != "fixture-1" {
		t.Errorf("frames %v, want the echo response", frames)
	}
	if _, err := hs.store.GetConnection(ctx, conn); err == nil {
		t.Error("connection still stored after $disconnect")
	}
}
