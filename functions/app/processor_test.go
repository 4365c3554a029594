package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/streamer-dev/streamer/functions/actions"
	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/functions/connections/connectionstest"
	"github.com/streamer-dev/streamer/functions/demo"
	"github.com/streamer-dev/streamer/functions/store"
	"github.com/streamer-dev/streamer/internal/ddblocal"
	"github.com/streamer-dev/streamer/internal/ddbtest"
	"github.com/streamer-dev/streamer/local/sqslocal"
)

func TestNewProcessorDispatchesBothSources(t *testing.T) {
	t.Parallel()
	db := ddbtest.Tables(t)
	conns := connectionstest.NewServer(t)
	queues := httptest.NewServer(sqslocal.New())
	t.Cleanup(queues.Close)
	ctx := context.Background()
	urls := map[string]string{}
	for _, name := range []string{"retry", "dlq"} {
		out, err := sqslocal.NewClient(queues.URL).CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		urls[name] = aws.ToString(out.QueueUrl)
	}
	env := map[string]string{
		config.EnvConnectionsTable:    db.Tables.Connections,
		config.EnvRequestsTable:       db.Tables.Requests,
		config.EnvSubscriptionsTable:  db.Tables.Subscriptions,
		config.EnvDynamoDBEndpoint:    db.Endpoint,
		config.EnvSQSEndpoint:         queues.URL,
		config.EnvConnectionsEndpoint: conns.URL,
		config.EnvRetryQueueURL:       urls["retry"],
		config.EnvDeadLetterQueueURL:  urls["dlq"],
	}
	reg := actions.NewRegistry()
	demo.Register(reg)
	h, err := NewProcessor(ctx, ddblocal.AWSConfig(), func(k string) string { return env[k] }, reg, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard)
	if err != nil {
		t.Fatalf("NewProcessor: %v", err)
	}
	st := store.New(db.Client, config.Tables{Connections: db.Tables.Connections, Requests: db.Tables.Requests, Subscriptions: db.Tables.Subscriptions})
	now := time.Now()
	r := store.Request{RequestID: store.RequestKey("acme", "r1"), ID: "r1", TenantID: "acme", ConnectionID: "c1", Status: store.StatusPending,
		Action: "delay", Payload: `{"seconds":0}`, CreatedAt: now.UnixMilli(), ProcessAfter: now.UnixMilli(), TTL: now.Add(time.Hour).Unix()}
	if _, _, err := st.CreateRequest(ctx, r, 0); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		give     string
		wantErr  string
		wantResp string
	}{
		{name: "no records", give: `{"Records":[]}`, wantResp: `{}`},
		{name: "stream removal is filtered out", give: `{"Records":[{"eventSource":"aws:dynamodb","eventName":"REMOVE","dynamodb":{"SequenceNumber":"1"}}]}`,
			wantResp: `{"batchItemFailures":null}`},
		{name: "queue wake-up runs the request",
			give:     fmt.Sprintf(`{"Records":[{"eventSource":"aws:sqs","messageId":"m1","body":%q}]}`, fmt.Sprintf(`{"request_key":%q,"due_ms":%d,"reason":"retry"}`, r.RequestID, now.UnixMilli())),
			wantResp: `{"batchItemFailures":null}`},
		{name: "unknown source", give: `{"Records":[{"eventSource":"aws:kinesis"}]}`, wantErr: `unsupported event source "aws:kinesis"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := Dispatch(ctx, h, json.RawMessage(tt.give))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(resp)
			if string(got) != tt.wantResp {
				t.Errorf("response %s, want %s", got, tt.wantResp)
			}
		})
	}
	got, err := st.RequestByKey(ctx, r.RequestID)
	if err != nil || got.Status != store.StatusCompleted {
		t.Fatalf("request %s (%v), want COMPLETED", got.Status, err)
	}
	if f := conns.Frames(t, "c1"); len(f) == 0 || f[len(f)-1]["type"] != "complete" || f[len(f)-1]["success"] != true {
		t.Errorf("frames to c1 %v, want a successful complete last", f)
	}
}

func TestProcessorConfigErrors(t *testing.T) {
	t.Parallel()
	env := map[string]string{config.EnvProcessorConcurrency: "many", config.EnvProgressRate: "-1"}
	_, err := processorConfig(func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("nil error for a bad environment")
	}
	for _, want := range []string{config.EnvRetryQueueURL, config.EnvDeadLetterQueueURL, config.EnvConnectionsEndpoint, config.EnvProcessorConcurrency, config.EnvProgressRate} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
