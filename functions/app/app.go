// Package app wires Streamer's Lambdas: it builds the logger, the AWS clients
// and the handlers from the environment, so the main packages stay thin and an
// embedder's main is three lines.
package app

import (
	"log/slog"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/functions/ddbclient"
)

// NewLogger returns a JSON logger writing to stdout (CloudWatch Logs in
// Lambda) at the level named by STREAMER_LOG_LEVEL (default info), with every
// record tagged with component ("router", "processor").
func NewLogger(component string, getenv config.Getenv) *slog.Logger {
	h := slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: logLevel(getenv(config.EnvLogLevel))})
	return slog.New(h).With("component", component)
}

func logLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// DynamoDBClient returns a DynamoDB client for awsCfg, pointed at
// DYNAMODB_ENDPOINT when it is set (DynamoDB Local).
func DynamoDBClient(awsCfg aws.Config, getenv config.Getenv) *dynamodb.Client {
	return ddbclient.New(awsCfg, getenv(config.EnvDynamoDBEndpoint))
}

// SQSClient returns an SQS client for awsCfg, pointed at SQS_ENDPOINT when it
// is set (the local runtime's queue).
func SQSClient(awsCfg aws.Config, getenv config.Getenv) *sqs.Client {
	ep := getenv(config.EnvSQSEndpoint)
	return sqs.NewFromConfig(awsCfg, func(o *sqs.Options) {
		if ep != "" {
			o.BaseEndpoint = aws.String(ep)
		}
	})
}
