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

// TestBroadcast sends to subscribers by event type and to the submitter's
// implicit subscription, removes a gone connection once and never posts to it
// again.
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
		give      string
		submitter string
		wantSent  int
	}{
		{protocol.EventProgress, "submitter", 2},
		{protocol.EventComplete, "submitter", 3},
		// The submitter's own subscription item rules over its implicit one.
		{protocol.EventProgress, "final", 1},
		{protocol.EventProgress, "", 1},
	}
	for _, tt := range tests {
		a := notify.Audience{RequestKey: key, Submitter: tt.submitter}
		sent, err := n.Broadcast(ctx, a, tt.give, protocol.Progress{Type: tt.give, RequestID: "r1"})
		if err != nil || sent != tt.wantSent {
			t.Errorf("Broadcast(%+v, %s) = %d, %v; want %d, nil", a, tt.give, sent, err, tt.wantSent)
		}
	}
	if got := len(srv.Posts("all")); got != 4 {
		t.Errorf("posts to the all-events subscriber = %d, want 4", got)
	}
	if got := len(srv.Posts("submitter")); got != 2 {
		t.Errorf("posts to the submitter = %d, want 2", got)
	}
	// A gone submitter has no subscription item to delete: it is posted to
	// once, then remembered as gone.
	srv.SetGone("left")
	before := len(srv.Authorizations())
	for range 2 {
		if sent, err := n.Broadcast(ctx, notify.Audience{RequestKey: key, Submitter: "left"}, protocol.EventProgress, protocol.Progress{Type: protocol.TypeProgress}); err != nil || sent != 1 {
			t.Errorf("Broadcast with a gone submitter = %d, %v; want 1, nil", sent, err)
		}
	}
	if got := len(srv.Authorizations()) - before; got != 3 {
		t.Errorf("requests for two broadcasts with a gone submitter = %d, want 3 (all twice, left once)", got)
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
