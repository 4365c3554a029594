package local_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/streamer-dev/streamer/functions/auth"
	"github.com/streamer-dev/streamer/local"
	"github.com/streamer-dev/streamer/local/localtest"
)

func get(t *testing.T, url string) (int, string, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

func TestServesPageAndDevToken(t *testing.T) {
	t.Parallel()
	plain := localtest.Shared(t)
	dev := localtest.Start(t, local.Options{DevToken: true})
	tests := []struct {
		name, url string
		want      int
	}{
		{"page", plain.URL(), http.StatusOK},
		{"unknown path", plain.URL() + "nope", http.StatusNotFound},
		{"no dev token by default", plain.URL() + "dev/token", http.StatusNotFound},
		{"dev token", dev.URL() + "dev/token", http.StatusOK},
		{"@connections of an unknown id", plain.URL() + "local/@connections/nope", http.StatusForbidden}, // unsigned
	}
	for _, tt := range tests {
		if got, _, _ := get(t, tt.url); got != tt.want {
			t.Errorf("%s: got HTTP %d, want %d", tt.name, got, tt.want)
		}
	}
	if _, ct, body := get(t, plain.URL()); !strings.HasPrefix(ct, "text/html") || !strings.Contains(body, `id="connect"`) {
		t.Errorf("page: %s %.80q", ct, body)
	}
	_, _, tok := get(t, dev.URL()+"dev/token")
	v, err := auth.NewVerifier(context.Background(), auth.Config{HMAC: auth.StaticKeys{{Key: []byte(local.DevJWTSecret)}}})
	if err != nil {
		t.Fatal(err)
	}
	if id, err := v.Verify(context.Background(), tok); err != nil || id.TenantID != local.DevTenant || id.UserID != local.DevUser {
		t.Errorf("dev token %+v (%v)", id, err)
	}
}

func TestQueuesAsDeployed(t *testing.T) {
	t.Parallel()
	rt := localtest.Shared(t)
	out, err := rt.SQS().GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(rt.Queues().Retry), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll},
	})
	if err != nil {
		t.Fatal(err)
	}
	if rp := out.Attributes["RedrivePolicy"]; !strings.Contains(rp, "streamer-retry-dlq") || !strings.Contains(rp, `"maxReceiveCount":5`) {
		t.Errorf("retry queue redrive policy %s", rp)
	}
	if vt := out.Attributes["VisibilityTimeout"]; vt != "5400" {
		t.Errorf("retry queue visibility timeout %s, want 6 x the processor's 900 s", vt)
	}
}
