package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/streamer-dev/streamer/functions/actions"
	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/functions/demo"
	"github.com/streamer-dev/streamer/functions/protocol"
	"github.com/streamer-dev/streamer/functions/store"
	"github.com/streamer-dev/streamer/internal/faultproxy"
	"github.com/streamer-dev/streamer/local"
	"github.com/streamer-dev/streamer/local/localtest"
)

// failFast is the demo fail action with a quick retry policy, so a request
// exhausts its attempts in well under a second.
const failFast = "fail_fast"

// failFastPolicy is failFast's retry policy.
var failFastPolicy = actions.RetryPolicy{MaxAttempts: 3, BaseDelay: 50 * time.Millisecond, MaxDelay: 200 * time.Millisecond}

// exhaustionRegistry holds the demo actions and failFast.
func exhaustionRegistry() *actions.Registry {
	reg := actions.NewRegistry()
	demo.Register(reg)
	reg.MustRegister(failFast, demo.Fail, actions.Options{Retry: failFastPolicy})
	return reg
}

// doomed is a kind of request that can only fail, and how it must end.
type doomed struct {
	name     string
	action   string
	payload  string
	attempts int
	message  string
}

// deadLetterBody is the part of a dead-letter message the scenario checks.
type deadLetterBody struct {
	RequestID string `json:"request_id"`
	Tenant    string `json:"tenant"`
	Attempts  int    `json:"attempts"`
	Code      string `json:"code"`
}

// TestRetryExhaustion proves that a request failing for good — a permanent
// error, or retryable errors past its policy's last attempt — ends FAILED
// with its error after exactly the attempts its policy allows, its client
// gets one complete frame with success false and that error, and the
// dead-letter queue gets exactly one message for it (the retry queue's own
// dead-letter queue none); on a healthy DynamoDB and with the DynamoDB
// faults scenario's faults.
func TestRetryExhaustion(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		scenario string
		faults   faultproxy.Config
	}{
		{"Retry exhaustion", faultproxy.Config{}},
		{"Retry exhaustion under DynamoDB faults", ddbFaults},
	} {
		t.Run(c.scenario, func(t *testing.T) {
			t.Parallel()
			exhaust(t, c.scenario, c.faults)
		})
	}
}

// exhaust runs the retry exhaustion scenario with faults injected into the
// runtime's DynamoDB calls.
func exhaust(t *testing.T, scenario string, faults faultproxy.Config) {
	n := sized(10, 100)
	kinds := []doomed{
		{"permanent", "fail", `{"permanent":true}`, 1, "permanent failure requested"},
		{"exhausted", failFast, `{"times":10}`, failFastPolicy.MaxAttempts, fmt.Sprintf("planned failure %d of 10", failFastPolicy.MaxAttempts)},
	}
	rt, proxy, direct := proxiedRuntime(t, local.Options{Registry: exhaustionRegistry(), Env: map[string]string{config.EnvRateLimit: "1000"}})
	tenant := localtest.Tenant("exhaustion")
	tr := track(t, rt, tenant, "u")
	proxy.Set(faults)
	ctx, cancel := context.WithTimeout(context.Background(), sized(3*time.Minute, 6*time.Minute))
	defer cancel()
	o := outcome{Group: groupFaults, Scenario: scenario, Size: fmt.Sprintf("%d permanent + %d past %d attempts", n, n, failFastPolicy.MaxAttempts)}
	var problems []string
	problem := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	want := map[string]doomed{} // by request id
	var ids, keys []string
	for _, k := range kinds {
		for i := range n {
			id := fmt.Sprintf("%s-%d", k.name, i)
			s, err := tr.submit(ctx, protocol.Message{Action: k.action, ID: id, Payload: json.RawMessage(k.payload)}, 10)
			if err != nil {
				t.Fatal(err)
			}
			if s.Answer.Type != protocol.TypeAcknowledgment {
				problem("%s answered %s, want an acknowledgment", id, s.Answer.Raw)
				continue
			}
			want[id] = k
			ids, keys = append(ids, id), append(keys, store.RequestKey(tenant, id))
		}
	}
	for _, id := range tr.await(ctx, ids, protocol.TypeComplete) {
		problem("%s: no complete frame", id)
	}
	reqs := settle(t, direct, rt.Tables().Requests, []string{tenant}, time.Minute)
	tally(&o, keys, reqs)
	letters := drain(ctx, t, rt.SQS(), rt.Queues().DeadLetter, len(ids))
	retryLetters := drain(ctx, t, rt.SQS(), rt.Queues().RetryDeadLetter, 0)

	perID := map[string]int{}
	for _, body := range letters {
		var dl deadLetterBody
		if err := json.Unmarshal([]byte(body), &dl); err != nil || dl.Tenant != tenant || want[dl.RequestID].name == "" {
			problem("unexpected dead letter %s", body)
			continue
		}
		perID[dl.RequestID]++
		if k := want[dl.RequestID]; dl.Attempts != k.attempts || dl.Code != protocol.CodeInternal {
			problem("dead letter %s: want %d attempts, code %s", body, k.attempts, protocol.CodeInternal)
		}
	}
	for _, id := range ids {
		k, r := want[id], reqs[store.RequestKey(tenant, id)]
		if c := perID[id]; c != 1 {
			problem("%s: %d dead letters, want 1", id, c)
			o.Duplicated += max(0, c-1)
		}
		if r.Status != store.StatusFailed || r.Attempt != k.attempts || r.Error == nil || r.Error.Message != k.message {
			problem("%s stored %s after %d attempts with error %+v; want FAILED after %d with %q", id, r.Status, r.Attempt, r.Error, k.attempts, k.message)
		}
		var completes []wireFrame
		for _, f := range tr.framesOf(id) {
			if f.Type == protocol.TypeComplete {
				completes = append(completes, f)
			}
		}
		switch {
		case len(completes) != 1:
			problem("%s: %d complete frames, want 1", id, len(completes))
			o.Duplicated += max(0, len(completes)-1)
		case success(completes[0]) || completes[0].Error == nil || completes[0].Error.Message != k.message:
			problem("%s: complete frame %s, want success false with %q", id, completes[0].Raw, k.message)
		}
	}
	if len(retryLetters) > 0 {
		problem("the retry queue's dead-letter queue got %d messages: %v", len(retryLetters), retryLetters)
	}
	o.Errors = len(problems)
	o.Notes = fmt.Sprintf("retry policy of the exhausted ones: %d attempts, backoff %s up to %s; %d dead letters for %d requests, %d on the retry queue's dead-letter queue",
		failFastPolicy.MaxAttempts, failFastPolicy.BaseDelay, failFastPolicy.MaxDelay, len(letters), len(ids), len(retryLetters))
	if faults.Rate > 0 {
		o.Notes += fmt.Sprintf("; DynamoDB fault rate %.0f%% (%.0f%% after forwarding): %s", faults.Rate*100, faults.AfterForward*100, proxy.Stats())
	}
	record(t, o)
	for _, p := range problems {
		t.Error(p)
	}
	if o.Failed != 2*n {
		t.Errorf("%d of %d requests FAILED (%d completed, %d lost, %d stuck)", o.Failed, 2*n, o.Completed, o.Lost, o.Stuck)
	}
}

// drain receives and deletes the queue's messages, returning their bodies:
// it waits until at least want arrived (or ctx ends), then takes whatever
// else is there, so an extra message shows.
func drain(ctx context.Context, t *testing.T, c *sqs.Client, queueURL string, want int) []string {
	t.Helper()
	var bodies []string
	for ctx.Err() == nil {
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(queueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			t.Fatalf("receive from %s: %v", queueURL, err)
		}
		if len(out.Messages) == 0 {
			if len(bodies) >= want {
				break
			}
			continue
		}
		del := &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(queueURL)}
		for i, m := range out.Messages {
			bodies = append(bodies, aws.ToString(m.Body))
			del.Entries = append(del.Entries, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: m.ReceiptHandle})
		}
		if res, err := c.DeleteMessageBatch(ctx, del); err != nil || len(res.Failed) > 0 {
			t.Fatalf("delete from %s: %v %+v", queueURL, err, res)
		}
	}
	return bodies
}
