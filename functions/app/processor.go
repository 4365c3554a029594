package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/streamer-dev/streamer/functions/actions"
	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/functions/connections"
	"github.com/streamer-dev/streamer/functions/metrics"
	"github.com/streamer-dev/streamer/functions/notify"
	"github.com/streamer-dev/streamer/functions/processing"
	"github.com/streamer-dev/streamer/functions/progress"
	"github.com/streamer-dev/streamer/functions/store"
	"github.com/streamer-dev/streamer/functions/tracing"
)

// NewProcessor builds the processor handler from the environment: table
// names, the retry and dead-letter queues, the @connections endpoint and the
// concurrency and progress limits. EMF metric records go to metricsOut
// (os.Stdout in Lambda); handler runs are traced in X-Ray when Lambda gives a
// daemon address.
func NewProcessor(ctx context.Context, awsCfg aws.Config, getenv config.Getenv, reg *actions.Registry, logger *slog.Logger, metricsOut io.Writer) (*processing.Handler, error) {
	tables, err := config.LoadTables(getenv)
	if err != nil {
		return nil, err
	}
	cfg, err := processorConfig(getenv)
	if err != nil {
		return nil, err
	}
	cfg.Tracer = tracing.New(getenv(tracing.EnvDaemonAddress), logger)
	st := store.New(DynamoDBClient(awsCfg, getenv), tables)
	notifier := notify.New(connections.New(getenv(config.EnvConnectionsEndpoint), awsCfg), st, logger)
	return processing.New(reg, st, notifier, SQSClient(awsCfg, getenv), metrics.New(metricsOut, "processor"), cfg, logger), nil
}

// processorConfig reads the processor's settings, reporting every bad or
// missing value at once.
func processorConfig(getenv config.Getenv) (processing.Config, error) {
	var errs []error
	cfg := processing.Config{
		RetryQueueURL:      getenv(config.EnvRetryQueueURL),
		DeadLetterQueueURL: getenv(config.EnvDeadLetterQueueURL),
	}
	for name, v := range map[string]string{config.EnvRetryQueueURL: cfg.RetryQueueURL, config.EnvDeadLetterQueueURL: cfg.DeadLetterQueueURL,
		config.EnvConnectionsEndpoint: getenv(config.EnvConnectionsEndpoint)} {
		if v == "" {
			errs = append(errs, fmt.Errorf("config: %s is not set", name))
		}
	}
	var err error
	cfg.Concurrency, err = config.Int(getenv, config.EnvProcessorConcurrency, processing.DefaultConcurrency)
	errs = append(errs, err)
	cfg.Progress.Rate, err = config.Float(getenv, config.EnvProgressRate, progress.DefaultRate)
	errs = append(errs, err)
	return cfg, errors.Join(errs...)
}

// eventSource is the part of a Lambda event that tells its source.
type eventSource struct {
	Records []struct {
		EventSource string `json:"eventSource"`
	} `json:"Records"`
}

// Dispatch routes a raw Lambda event to HandleStream ("aws:dynamodb") or
// HandleQueue ("aws:sqs") by its first record's eventSource. An event with no
// records is answered with an empty response.
func Dispatch(ctx context.Context, h *processing.Handler, raw json.RawMessage) (any, error) {
	var src eventSource
	if err := json.Unmarshal(raw, &src); err != nil {
		return nil, fmt.Errorf("processor: decode event: %w", err)
	}
	if len(src.Records) == 0 {
		return struct{}{}, nil
	}
	switch s := src.Records[0].EventSource; s {
	case "aws:dynamodb":
		var ev events.DynamoDBEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			return nil, fmt.Errorf("processor: decode stream event: %w", err)
		}
		return h.HandleStream(ctx, ev)
	case "aws:sqs":
		var ev events.SQSEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			return nil, fmt.Errorf("processor: decode queue event: %w", err)
		}
		return h.HandleQueue(ctx, ev)
	default:
		return nil, fmt.Errorf("processor: unsupported event source %q", s)
	}
}

// StartProcessor runs the processor Lambda, which takes both the requests
// stream and the retry queue as event sources. It builds everything from the
// process environment and the default AWS configuration, and only returns by
// exiting the process on a configuration error.
func StartProcessor(reg *actions.Registry) {
	ctx := context.Background()
	logger := NewLogger("processor", os.Getenv)
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		logger.Error("load AWS config", "error", err)
		os.Exit(1)
	}
	h, err := NewProcessor(ctx, awsCfg, os.Getenv, reg, logger, os.Stdout)
	if err != nil {
		logger.Error("build processor", "error", err)
		os.Exit(1)
	}
	lambda.Start(func(ctx context.Context, raw json.RawMessage) (any, error) {
		return Dispatch(ctx, h, raw)
	})
}
