package processing

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/streamer-dev/streamer/functions/store"
)

// maxDelay is SQS's longest message delay; later wake-ups chain.
const maxDelay = 900 * time.Second

// Reasons a wake-up message was sent.
const (
	reasonRetry     = "retry"
	reasonScheduled = "scheduled"
	reasonLease     = "lease"
)

// wakeup is the retry queue's message: look at the request with table key
// RequestKey at DueMs (epoch ms) and run it if it is due. Priority is the
// request's, so a batch knows which priority-queue partitions to sweep.
type wakeup struct {
	RequestKey string `json:"request_key"`
	DueMs      int64  `json:"due_ms"`
	Reason     string `json:"reason"`
	Priority   int    `json:"priority,omitempty"`
}

// wakeupFor is the wake-up of r at due for reason.
func wakeupFor(r store.Request, due int64, reason string) wakeup {
	return wakeup{RequestKey: r.RequestID, DueMs: due, Reason: reason, Priority: r.Priority}
}

// deadLetter is the dead-letter queue's message for a request that failed for good.
type deadLetter struct {
	RequestID  string `json:"request_id"`
	RequestKey string `json:"request_key"`
	Action     string `json:"action"`
	Tenant     string `json:"tenant"`
	Attempts   int    `json:"attempts"`
	LastError  string `json:"last_error"`
	Code       string `json:"code"`
	FailedAt   int64  `json:"failed_at"`
}

// Queue sends messages (*sqs.Client).
type Queue interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// delaySeconds is the SQS delay that delivers a message no earlier than due:
// whole seconds rounded up, capped at 15 minutes (the message re-enqueues
// itself when it arrives early).
func delaySeconds(now time.Time, due int64) int32 {
	d := time.UnixMilli(due).Sub(now)
	if d <= 0 {
		return 0
	}
	d = min(d, maxDelay)
	return int32((d + time.Second - 1) / time.Second)
}

// enqueue sends a wake-up, delayed until it is due.
func (h *Handler) enqueue(ctx context.Context, w wakeup) error {
	body, err := json.Marshal(w)
	if err != nil {
		return fmt.Errorf("enqueue %s wake-up: %w", w.Reason, err)
	}
	_, err = h.queue.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:     aws.String(h.cfg.RetryQueueURL),
		MessageBody:  aws.String(string(body)),
		DelaySeconds: delaySeconds(h.now(), w.DueMs),
	})
	if err != nil {
		return fmt.Errorf("enqueue %s wake-up: %w", w.Reason, err)
	}
	return nil
}

// Rearm sends again the wake-up an open request waits for: its lease
// watchdog (just after LeaseExpiresAt) when PROCESSING, its due time
// (ProcessAfter) when PENDING or RETRYING. A final request needs none. On AWS
// the retry queue keeps its messages through any crash; a runtime whose queue
// is in memory (the local one) calls Rearm on start for the requests it finds
// open, or a crash would strand them. An extra wake-up is harmless: claims are
// conditional.
func (h *Handler) Rearm(ctx context.Context, r store.Request) error {
	switch r.Status {
	case store.StatusProcessing:
		return h.enqueue(ctx, wakeupFor(r, r.LeaseExpiresAt+time.Second.Milliseconds(), reasonLease))
	case store.StatusPending:
		return h.enqueue(ctx, wakeupFor(r, r.ProcessAfter, reasonScheduled))
	case store.StatusRetrying:
		return h.enqueue(ctx, wakeupFor(r, r.ProcessAfter, reasonRetry))
	}
	return nil
}

// deadLetter sends a failed request's record to the dead-letter queue.
func (h *Handler) deadLetter(ctx context.Context, d deadLetter) error {
	body, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	if _, err := h.queue.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(h.cfg.DeadLetterQueueURL), MessageBody: aws.String(string(body))}); err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	return nil
}
