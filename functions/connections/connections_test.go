package connections_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/streamer-dev/streamer/functions/connections"
	"github.com/streamer-dev/streamer/functions/connections/connectionstest"
)

func awsCfg() aws.Config {
	return aws.Config{Region: "eu-west-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")}
}

func TestPostGetDelete(t *testing.T) {
	t.Parallel()
	srv := connectionstest.NewServer(t)
	c := connections.New(srv.URL, awsCfg())
	ctx := context.Background()
	if err := c.Post(ctx, "abc=", []byte(`{"type":"pong"}`)); err != nil {
		t.Fatalf("Post: %v", err)
	}
	if got := srv.Posts("abc="); len(got) != 1 || string(got[0]) != `{"type":"pong"}` {
		t.Errorf("posts = %q, want one pong", got)
	}
	info, err := c.Get(ctx, "abc=")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if info.Identity.SourceIP != "192.0.2.1" || info.ConnectedAt.IsZero() {
		t.Errorf("Get = %+v, want the served identity and time", info)
	}
	if err := c.Delete(ctx, "abc="); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := c.Post(ctx, "abc=", []byte(`{}`)); !errors.Is(err, connections.ErrGone) {
		t.Errorf("Post after Delete = %v, want ErrGone", err)
	}
	for _, a := range srv.Authorizations() {
		if !strings.HasPrefix(a, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") || !strings.Contains(a, "/eu-west-1/execute-api/aws4_request") {
			t.Errorf("Authorization = %q, want a SigV4 execute-api signature", a)
		}
	}
}

func TestPostTooLarge(t *testing.T) {
	t.Parallel()
	srv := connectionstest.NewServer(t)
	tests := []struct {
		name    string
		opts    []connections.Option
		size    int
		wantErr error
	}{
		{name: "frame limit", size: connections.MaxFrameBytes},
		{name: "over frame limit", size: connections.MaxFrameBytes + 1, wantErr: connections.ErrTooLarge},
		{name: "message limit", opts: []connections.Option{connections.WithMaxBytes(1 << 30)}, size: connections.MaxMessageBytes},
		{name: "over message limit", opts: []connections.Option{connections.WithMaxBytes(1 << 30)}, size: connections.MaxMessageBytes + 1, wantErr: connections.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id := strings.ReplaceAll(tt.name, " ", "-")
			err := connections.New(srv.URL, awsCfg(), tt.opts...).Post(context.Background(), id, make([]byte, tt.size))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Post(%d bytes) = %v, want %v", tt.size, err, tt.wantErr)
			}
			if sent := len(srv.Posts(id)) == 1; sent != (tt.wantErr == nil) {
				t.Errorf("sent = %v, want %v", sent, tt.wantErr == nil)
			}
		})
	}
}

func TestRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		statuses  []int // answers in order; the last repeats
		wantErr   error
		wantCalls int32
	}{
		{name: "throttled then ok", statuses: []int{429, 429, 200}, wantCalls: 3},
		{name: "server error then ok", statuses: []int{503, 200}, wantCalls: 2},
		{name: "always throttled", statuses: []int{429}, wantErr: connections.ErrThrottled, wantCalls: 4},
		{name: "gone is not retried", statuses: []int{410}, wantErr: connections.ErrGone, wantCalls: 1},
		{name: "payload too large from server", statuses: []int{413}, wantErr: connections.ErrTooLarge, wantCalls: 1},
		{name: "forbidden", statuses: []int{403}, wantErr: errForbidden, wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := int(calls.Add(1)) - 1
				w.WriteHeader(tt.statuses[min(n, len(tt.statuses)-1)])
			}))
			defer hs.Close()
			c := connections.New(hs.URL, aws.Config{}, connections.WithRetries(3, time.Millisecond))
			err := c.Post(context.Background(), "c1", []byte(`{}`))
			switch {
			case tt.wantErr == errForbidden:
				if err == nil || !strings.Contains(err.Error(), "HTTP 403") {
					t.Errorf("Post = %v, want an HTTP 403 error", err)
				}
			case !errors.Is(err, tt.wantErr):
				t.Errorf("Post = %v, want %v", err, tt.wantErr)
			}
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("calls = %d, want %d", got, tt.wantCalls)
			}
		})
	}
}

var errForbidden = errors.New("forbidden")

func TestEndpointFor(t *testing.T) {
	t.Parallel()
	if got, want := connections.EndpointFor("abc.execute-api.eu-west-1.amazonaws.com", "prod"), "https://abc.execute-api.eu-west-1.amazonaws.com/prod"; got != want {
		t.Errorf("EndpointFor = %q, want %q", got, want)
	}
}
