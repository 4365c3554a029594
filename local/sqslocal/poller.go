package sqslocal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Handler is a Lambda handler for SQS events with ReportBatchItemFailures.
type Handler func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error)

// API is the part of the SQS API the poller calls (*sqs.Client).
type API interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// Poller plays Lambda's SQS event source mapping: it long-polls a queue and
// invokes a handler with batches of messages. Messages the handler reports as
// batch item failures, or all of them when it returns an error, stay on the
// queue and come back after the visibility timeout (and go to the queue's
// dead-letter queue after its maxReceiveCount); the others are deleted.
type Poller struct {
	client   API
	queueURL string
	handler  Handler
	logger   *slog.Logger
	// BatchSize is the most messages per invocation (1–10). Default 10.
	BatchSize int
	// Wait is the long-poll wait of one receive. Default 1s.
	Wait time.Duration
	// Timeout is the invocation deadline set on the handler's context.
	// Default 60s.
	Timeout time.Duration
}

// NewPoller returns a poller of the queue at queueURL that invokes handler.
func NewPoller(client API, queueURL string, handler Handler, logger *slog.Logger) *Poller {
	return &Poller{client: client, queueURL: queueURL, handler: handler, logger: logger,
		BatchSize: 10, Wait: time.Second, Timeout: time.Minute}
}

// Run polls until ctx ends; it returns nil then. Receive errors are logged and
// retried after a pause.
func (p *Poller) Run(ctx context.Context) error {
	arn, err := p.queueARN(ctx)
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		if _, err := p.poll(ctx, arn); err != nil && ctx.Err() == nil {
			p.logger.WarnContext(ctx, "sqs poll", "queue", p.queueURL, "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

// PollOnce receives one batch (waiting up to Wait), invokes the handler with
// it and deletes what succeeded. It returns how many messages it delivered.
func (p *Poller) PollOnce(ctx context.Context) (int, error) {
	arn, err := p.queueARN(ctx)
	if err != nil {
		return 0, err
	}
	return p.poll(ctx, arn)
}

func (p *Poller) queueARN(ctx context.Context) (string, error) {
	out, err := p.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(p.queueURL),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", fmt.Errorf("sqs poller: queue arn: %w", err)
	}
	return out.Attributes[string(types.QueueAttributeNameQueueArn)], nil
}

func (p *Poller) poll(ctx context.Context, arn string) (int, error) {
	out, err := p.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(p.queueURL),
		MaxNumberOfMessages:         int32(p.BatchSize),
		WaitTimeSeconds:             int32(p.Wait / time.Second),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
	})
	if err != nil {
		return 0, fmt.Errorf("sqs poller: receive: %w", err)
	}
	if len(out.Messages) == 0 {
		return 0, nil
	}
	ev := events.SQSEvent{Records: make([]events.SQSMessage, len(out.Messages))}
	for i, m := range out.Messages {
		ev.Records[i] = events.SQSMessage{
			MessageId:      aws.ToString(m.MessageId),
			ReceiptHandle:  aws.ToString(m.ReceiptHandle),
			Body:           aws.ToString(m.Body),
			Md5OfBody:      aws.ToString(m.MD5OfBody),
			Attributes:     m.Attributes,
			EventSource:    "aws:sqs",
			EventSourceARN: arn,
			AWSRegion:      Region,
		}
	}
	invokeCtx, cancel := context.WithTimeout(ctx, p.Timeout)
	resp, err := p.invoke(invokeCtx, ev)
	cancel()
	if err != nil {
		p.logger.WarnContext(ctx, "sqs handler failed; the batch will be redelivered", "queue", p.queueURL, "error", err)
		return len(ev.Records), nil
	}
	failed := map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		failed[f.ItemIdentifier] = true
	}
	var del []types.DeleteMessageBatchRequestEntry
	for i, r := range ev.Records {
		if !failed[r.MessageId] {
			del = append(del, types.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: aws.String(r.ReceiptHandle)})
		}
	}
	if len(del) > 0 {
		if _, err := p.client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(p.queueURL), Entries: del}); err != nil {
			return len(ev.Records), fmt.Errorf("sqs poller: delete: %w", err)
		}
	}
	return len(ev.Records), nil
}

// invoke calls the handler, turning a panic into an error as Lambda would
// report a crashed invocation.
func (p *Poller) invoke(ctx context.Context, ev events.SQSEvent) (resp events.SQSEventResponse, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New(fmt.Sprint("handler panicked: ", r))
		}
	}()
	return p.handler(ctx, ev)
}
