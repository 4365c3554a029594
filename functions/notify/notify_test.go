package notify_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/functions/connections"
	"github.com/streamer-dev/streamer/functions/connections/connectionstest"
	"github.com/streamer-dev/streamer/functions/notify"
	"github.com/streamer-dev/streamer/functions/protocol"
	"github.com/streamer-dev/streamer/functions/store"
	"github.com/streamer-dev/streamer/internal/ddbtest"
)

func TestBroadcast(t *testing.T) {
	t.Parallel()
	env := ddbtest.Tables(t)
	st := store.New(env.Client, config.Tables{Connections: env.Tables.Connections, Requests: env.Tables.Requests, Subscriptions: env.Tables.Subscriptions})
	srv := connectionstest.NewServer(t)
	n := notify.New(connections.New(srv.URL, aws.Config{}), st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	key := store.RequestKey("t1", "r1")
	ttl := time.Now().Add(time.Hour).Unix()
	subs := []struct {
		conn   string
		events []string
	}{
		{"all", nil},
		{"final", []string{protocol.EventComplete}},
		{"gone", nil},
	}
	for _, s := range subs {
		c := store.Connection{ConnectionID: s.conn, TenantID: "t1", UserID: "u", TTL: ttl}
		if err := st.PutConnection(ctx, c, 0); err != nil {
			t.Fatal(err)
		}
		if err := st.PutSubscription(ctx, store.Subscription{ConnectionID: s.conn, RequestID: key, TenantID: "t1", EventTypes: s.events, TTL: ttl}); err != nil {
			t.Fatal(err)
		}
	}
	srv.SetGone("gone")

	tests := []struct {
		give     string
		wantSent int
	}{
		{protocol.EventProgress, 1},
		{protocol.EventComplete, 2},
	}
	for _, tt := range tests {
		sent, err := n.Broadcast(ctx, key, tt.give, protocol.Progress{Type: tt.give, RequestID: "r1"})
		if err != nil || sent != tt.wantSent {
			t.Errorf("Broadcast(%s) = %d, %v; want %d, nil", tt.give, sent, err, tt.wantSent)
		}
	}
	if got := len(srv.Posts("all")); got != 2 {
		t.Errorf("posts to the all-events subscriber = %d, want 2", got)
	}
	if got := srv.Frames(t, "final"); len(got) != 1 || got[0]["type"] != protocol.EventComplete {
		t.Errorf("posts to the complete-only subscriber = %v, want one complete frame", got)
	}
	if _, err := st.GetConnection(ctx, "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("gone connection still stored: %v", err)
	}
	left, _ := st.RequestSubscriptions(ctx, key)
	if len(left) != 2 {
		t.Errorf("subscriptions left = %d, want 2 (the gone connection's removed)", len(left))
	}
	if err := n.Send(ctx, "gone", protocol.Pong{Type: protocol.TypePong}); !errors.Is(err, notify.ErrGone) {
		t.Errorf("Send to a gone connection = %v, want ErrGone", err)
	}
}
