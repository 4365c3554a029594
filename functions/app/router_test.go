package app

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/golang-jwt/jwt/v5"

	"github.com/streamer-dev/streamer/functions/actions"
	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/functions/connections/connectionstest"
	"github.com/streamer-dev/streamer/functions/demo"
	"github.com/streamer-dev/streamer/internal/ddblocal"
	"github.com/streamer-dev/streamer/internal/ddbtest"
)

func TestNewRouterFromEnvironment(t *testing.T) {
	t.Parallel()
	db := ddbtest.Tables(t)
	srv := connectionstest.NewServer(t)
	secret := strings.Repeat("s", 32)
	env := map[string]string{
		config.EnvConnectionsTable:    db.Tables.Connections,
		config.EnvRequestsTable:       db.Tables.Requests,
		config.EnvSubscriptionsTable:  db.Tables.Subscriptions,
		config.EnvDynamoDBEndpoint:    db.Endpoint,
		config.EnvConnectionsEndpoint: srv.URL,
		config.EnvJWTSecret:           secret,
	}
	reg := actions.NewRegistry()
	demo.Register(reg)
	h, err := NewRouter(context.Background(), ddblocal.AWSConfig(), func(k string) string { return env[k] }, reg, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard)
	if err != nil {
		t.Fatalf("NewRouter: %v", err)
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "u1", "tenant_id": "acme", "permissions": []string{"*"}, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	var connect, msg events.APIGatewayWebsocketProxyRequest
	connect.RequestContext.EventType, connect.RequestContext.ConnectionID = "CONNECT", "c1"
	connect.QueryStringParameters = map[string]string{"token": tok}
	msg.RequestContext.EventType, msg.RequestContext.ConnectionID = "MESSAGE", "c1"
	msg.Body = `{"action":"delay","id":"r1","payload":{"seconds":0.1}}`
	for _, ev := range []events.APIGatewayWebsocketProxyRequest{connect, msg} {
		if resp, err := h.Handle(context.Background(), ev); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d, %v", ev.RequestContext.EventType, resp.StatusCode, err)
		}
	}
	if f := srv.Frames(t, "c1"); len(f) != 1 || f[0]["type"] != "acknowledgment" {
		t.Errorf("frames %v, want one acknowledgment", f)
	}
}

func TestRouterConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		give map[string]string
		want []string
	}{
		{"defaults", nil, nil},
		{"bad values reported together", map[string]string{config.EnvRateLimit: "fast", config.EnvSyncTimeout: "-1s"}, []string{config.EnvRateLimit, config.EnvSyncTimeout}},
		{"payload above the message limit", map[string]string{config.EnvMaxPayloadBytes: "200000"}, []string{config.EnvMaxPayloadBytes}},
	}
	for _, tt := range tests {
		cfg, rate, err := routerConfig(func(k string) string { return tt.give[k] })
		if len(tt.want) == 0 {
			if err != nil || rate != DefaultRateLimit || cfg.TenantMaxInflight != 1000 {
				t.Errorf("%s: %+v, %v, %v", tt.name, cfg, rate, err)
			}
			continue
		}
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %v, want it to name %s", tt.name, err, w)
			}
		}
	}
}
