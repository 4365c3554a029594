package sqslocal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"sort"
	"strconv"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
)

// newQueue starts a server and creates a queue with attrs through the real SDK.
func newQueue(t *testing.T, attrs map[string]string) (*sqs.Client, string) {
	t.Helper()
	srv := httptest.NewServer(New())
	t.Cleanup(srv.Close)
	client := NewClient(srv.URL)
	out, err := client.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String("q"), Attributes: attrs})
	if err != nil {
		t.Fatalf("CreateQueue: %v", err)
	}
	return client, aws.ToString(out.QueueUrl)
}

func counts(t *testing.T, c *sqs.Client, url string) [3]int {
	t.Helper()
	out, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll}})
	if err != nil {
		t.Fatalf("GetQueueAttributes: %v", err)
	}
	var got [3]int
	for i, n := range []string{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"} {
		got[i], _ = strconv.Atoi(out.Attributes[n])
	}
	return got
}

func receive(t *testing.T, c *sqs.Client, url string, wait int32) []types.Message {
	t.Helper()
	in := &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: wait,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount, types.MessageSystemAttributeNameSentTimestamp}}
	out, err := c.ReceiveMessage(context.Background(), in)
	if err != nil {
		t.Fatalf("ReceiveMessage: %v", err)
	}
	return out.Messages
}

func TestSendReceiveDelete(t *testing.T) {
	t.Parallel()
	c, url := newQueue(t, nil)
	ctx := context.Background()
	// The SDK checks the MD5 of every body it sends and receives.
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(`{"x":"é"}`)}); err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	msgs := receive(t, c, url, 0)
	if len(msgs) != 1 || aws.ToString(msgs[0].Body) != `{"x":"é"}` || msgs[0].Attributes["ApproximateReceiveCount"] != "1" || msgs[0].Attributes["SentTimestamp"] == "" {
		t.Fatalf("received %+v", msgs)
	}
	if got := counts(t, c, url); got != [3]int{0, 1, 0} {
		t.Errorf("counts after receive %v, want [0 1 0]", got)
	}
	if got := receive(t, c, url, 0); len(got) != 0 {
		t.Errorf("received an in-flight message again: %+v", got)
	}
	if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: msgs[0].ReceiptHandle}); err != nil {
		t.Fatalf("DeleteMessage: %v", err)
	}
	if got := counts(t, c, url); got != [3]int{0, 0, 0} {
		t.Errorf("counts after delete %v, want zeros", got)
	}
}

func TestDelayAndLongPoll(t *testing.T) {
	t.Parallel()
	c, url := newQueue(t, nil)
	if _, err := c.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("later"), DelaySeconds: 1}); err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	if got := counts(t, c, url); got != [3]int{0, 0, 1} {
		t.Errorf("counts %v, want one delayed", got)
	}
	if got := receive(t, c, url, 0); len(got) != 0 {
		t.Fatalf("received a delayed message at once")
	}
	// A long poll outlasting the delay gets it.
	if got := receive(t, c, url, 5); len(got) != 1 || aws.ToString(got[0].Body) != "later" {
		t.Fatalf("long poll got %+v, want the delayed message", got)
	}
}

func TestVisibilityAndRedrive(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(New())
	t.Cleanup(srv.Close)
	c := NewClient(srv.URL)
	ctx := context.Background()
	dlq, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("dlq")})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: dlq.QueueUrl, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	q, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("work"), Attributes: map[string]string{
		"RedrivePolicy": fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"2"}`, attrs.Attributes["QueueArn"]),
	}})
	if err != nil {
		t.Fatalf("CreateQueue with redrive: %v", err)
	}
	url := aws.ToString(q.QueueUrl)
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String("poison")}); err != nil {
		t.Fatal(err)
	}
	for want := 1; want <= 2; want++ {
		got := receive(t, c, url, 0)
		if len(got) != 1 || got[0].Attributes["ApproximateReceiveCount"] != strconv.Itoa(want) {
			t.Fatalf("receive %d: %+v", want, got)
		}
		// Visibility 0: the message is visible again at once, as after a failure.
		if _, err := c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: q.QueueUrl, ReceiptHandle: got[0].ReceiptHandle}); err != nil {
			t.Fatalf("ChangeMessageVisibility: %v", err)
		}
	}
	if got := receive(t, c, url, 0); len(got) != 0 {
		t.Fatalf("third receive got %+v, want the message moved to the DLQ", got)
	}
	got := receive(t, c, aws.ToString(dlq.QueueUrl), 0)
	if len(got) != 1 || aws.ToString(got[0].Body) != "poison" {
		t.Fatalf("dlq holds %+v, want the poison message", got)
	}
	if got[0].Attributes["ApproximateReceiveCount"] != "3" {
		t.Errorf("dlq receive count %q, want 3 (kept across the move)", got[0].Attributes["ApproximateReceiveCount"])
	}
}

func TestBatchesAndPurge(t *testing.T) {
	t.Parallel()
	c, url := newQueue(t, map[string]string{"VisibilityTimeout": "60"})
	ctx := context.Background()
	var entries []types.SendMessageBatchRequestEntry
	for i := range 3 {
		entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String("m" + strconv.Itoa(i))})
	}
	entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String("bad"), MessageBody: aws.String("x"), DelaySeconds: 901})
	out, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
	if err != nil {
		t.Fatalf("SendMessageBatch: %v", err)
	}
	if len(out.Successful) != 3 || len(out.Failed) != 1 || aws.ToString(out.Failed[0].Id) != "bad" {
		t.Fatalf("batch: %d ok, failed %+v", len(out.Successful), out.Failed)
	}
	msgs := receive(t, c, url, 0)
	var bodies []string
	var del []types.DeleteMessageBatchRequestEntry
	for i, m := range msgs {
		bodies = append(bodies, aws.ToString(m.Body))
		del = append(del, types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
	}
	sort.Strings(bodies)
	if fmt.Sprint(bodies) != "[m0 m1 m2]" {
		t.Fatalf("received %v", bodies)
	}
	dout, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: del[:2]})
	if err != nil || len(dout.Successful) != 2 {
		t.Fatalf("DeleteMessageBatch: %v %+v", err, dout)
	}
	if got := counts(t, c, url); got != [3]int{0, 1, 0} {
		t.Errorf("counts %v, want one in flight", got)
	}
	if _, err := c.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: aws.String(url)}); err != nil {
		t.Fatalf("PurgeQueue: %v", err)
	}
	if got := counts(t, c, url); got != [3]int{} {
		t.Errorf("counts after purge %v", got)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	c, url := newQueue(t, nil)
	ctx := context.Background()
	tests := []struct {
		name     string
		call     func() error
		wantCode string
	}{
		{name: "missing queue url", call: func() error {
			_, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("nope")})
			var qdne *types.QueueDoesNotExist
			if err != nil && !errors.As(err, &qdne) {
				return fmt.Errorf("not a QueueDoesNotExist: %w", err)
			}
			return err
		}, wantCode: "AWS.SimpleQueueService.NonExistentQueue"},
		{name: "send to missing queue", call: func() error {
			_, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url + "x"), MessageBody: aws.String("m")})
			return err
		}, wantCode: "AWS.SimpleQueueService.NonExistentQueue"},
		{name: "delay too long", call: func() error {
			_, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("m"), DelaySeconds: 901})
			return err
		}, wantCode: "InvalidParameterValue"},
		{name: "empty batch", call: func() error {
			_, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: []types.DeleteMessageBatchRequestEntry{}})
			return err
		}, wantCode: "AWS.SimpleQueueService.EmptyBatchRequest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var ae smithy.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("got %v, want an API error", err)
			}
			if got := ae.ErrorCode(); got != tt.wantCode {
				t.Errorf("code %q, want %q (%v)", got, tt.wantCode, err)
			}
		})
	}
}

func TestPollerReportsBatchItemFailures(t *testing.T) {
	t.Parallel()
	c, url := newQueue(t, map[string]string{"VisibilityTimeout": "60"})
	ctx := context.Background()
	for _, body := range []string{"ok", "fail"} {
		if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body)}); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	p := NewPoller(c, url, func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		var resp events.SQSEventResponse
		if _, ok := ctx.Deadline(); !ok {
			t.Error("handler context has no deadline")
		}
		for _, r := range ev.Records {
			seen = append(seen, r.Body)
			if r.EventSource != "aws:sqs" || r.Attributes["ApproximateReceiveCount"] != "1" {
				t.Errorf("record %+v", r)
			}
			if r.Body == "fail" {
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
			}
		}
		return resp, nil
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for len(seen) < 2 {
		if _, err := p.PollOnce(ctx); err != nil {
			t.Fatalf("PollOnce: %v", err)
		}
	}
	sort.Strings(seen)
	if fmt.Sprint(seen) != "[fail ok]" {
		t.Errorf("handler saw %v", seen)
	}
	// The success is deleted; the failure stays in flight until its visibility timeout.
	if got := counts(t, c, url); got != [3]int{0, 1, 0} {
		t.Errorf("counts %v, want only the failed message in flight", got)
	}
}
