package config

import (
	"testing"
	"time"
)

func env(m map[string]string) Getenv { return func(k string) string { return m[k] } }

func TestLoadTables(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		give    map[string]string
		wantErr bool
	}{
		{"all set", map[string]string{EnvConnectionsTable: "c", EnvRequestsTable: "r", EnvSubscriptionsTable: "s"}, false},
		{"one missing", map[string]string{EnvConnectionsTable: "c", EnvRequestsTable: "r"}, true},
		{"none", map[string]string{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := LoadTables(env(tt.give))
			if (err != nil) != tt.wantErr {
				t.Fatalf("LoadTables() error = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && (got.Connections != "c" || got.Requests != "r" || got.Subscriptions != "s") {
				t.Errorf("LoadTables() = %+v", got)
			}
		})
	}
}

func TestParsers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		give    string
		wantErr bool
	}{
		{"unset", "", false},
		{"valid", "7", false},
		{"negative", "-1", true},
		{"garbage", "x", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := env(map[string]string{"V": tt.give})
			if _, err := Int(g, "V", 3); (err != nil) != tt.wantErr {
				t.Errorf("Int(%q) error = %v, wantErr %v", tt.give, err, tt.wantErr)
			}
			if _, err := Float(g, "V", 3); (err != nil) != tt.wantErr {
				t.Errorf("Float(%q) error = %v, wantErr %v", tt.give, err, tt.wantErr)
			}
		})
	}
	if d, err := Duration(env(map[string]string{"D": "5s"}), "D", time.Second); err != nil || d != 5*time.Second {
		t.Errorf("Duration(5s) = %v, %v", d, err)
	}
	if _, err := Duration(env(map[string]string{"D": "0s"}), "D", time.Second); err == nil {
		t.Error("Duration(0s) succeeded, want error")
	}
}
