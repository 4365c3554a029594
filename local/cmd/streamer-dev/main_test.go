package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/streamer-dev/streamer/functions/auth"
	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/local"
)

func TestToken(t *testing.T) {
	t.Parallel()
	const custom = "a-custom-development-key-of-enough-bytes"
	tests := []struct {
		name   string
		args   []string
		secret string
		want   auth.Identity
	}{
		{"defaults", nil, "", auth.Identity{UserID: local.DevUser, TenantID: local.DevTenant, Permissions: []string{"*"}}},
		{"flags and secret", []string{"-tenant", "acme", "-user", "alice", "-permissions", "echo,delay"}, custom,
			auth.Identity{UserID: "alice", TenantID: "acme", Permissions: []string{"delay", "echo"}}},
	}
	for _, tt := range tests {
		env := map[string]string{config.EnvJWTSecret: tt.secret}
		var out bytes.Buffer
		if err := run(append([]string{"token"}, tt.args...), func(k string) string { return env[k] }, &out, &out); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		key := tt.secret
		if key == "" {
			key = local.DevJWTSecret
		}
		v, err := auth.NewVerifier(context.Background(), auth.Config{HMAC: auth.StaticKeys([]auth.HMACKey{{Key: []byte(key)}})})
		if err != nil {
			t.Fatal(err)
		}
		got, err := v.Verify(context.Background(), strings.TrimSpace(out.String()))
		if err != nil {
			t.Fatalf("%s: verify: %v", tt.name, err)
		}
		if got.UserID != tt.want.UserID || got.TenantID != tt.want.TenantID || strings.Join(got.Permissions, ",") != strings.Join(tt.want.Permissions, ",") {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

// TestKeyShown: the banner prints the public development key, never a key
// given in STREAMER_JWT_SECRET.
func TestKeyShown(t *testing.T) {
	t.Parallel()
	const custom = "a-custom-development-key-of-enough-bytes"
	for _, tt := range []struct {
		secret, want string
	}{{"", local.DevJWTSecret}, {custom, "(not shown)"}} {
		key, note := keyShown(func(k string) string { return map[string]string{config.EnvJWTSecret: tt.secret}[k] })
		if key != tt.want || strings.Contains(key+note, custom) {
			t.Errorf("secret %q: banner shows %q (%s), want %q", tt.secret, key, note, tt.want)
		}
	}
}
