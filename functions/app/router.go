package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/streamer-dev/streamer/functions/actions"
	"github.com/streamer-dev/streamer/functions/auth"
	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/functions/connections"
	"github.com/streamer-dev/streamer/functions/metrics"
	"github.com/streamer-dev/streamer/functions/notify"
	"github.com/streamer-dev/streamer/functions/protocol"
	"github.com/streamer-dev/streamer/functions/routing"
	"github.com/streamer-dev/streamer/functions/store"
)

// DefaultRateLimit is the per-connection message rate when STREAMER_RATE_LIMIT
// is unset (messages per second; the burst is twice that).
const DefaultRateLimit = 10

// NewRouter builds the router handler from the environment: table names,
// limits, token verification and the @connections endpoint. EMF metric
// records go to metricsOut (os.Stdout in Lambda).
func NewRouter(ctx context.Context, awsCfg aws.Config, getenv config.Getenv, reg *actions.Registry, logger *slog.Logger, metricsOut io.Writer) (*routing.Handler, error) {
	tables, err := config.LoadTables(getenv)
	if err != nil {
		return nil, err
	}
	cfg, rate, err := routerConfig(getenv)
	if err != nil {
		return nil, err
	}
	authCfg, err := auth.ConfigFromEnv(getenv, secretsmanager.NewFromConfig(awsCfg))
	if err != nil {
		return nil, err
	}
	verifier, err := auth.NewVerifier(ctx, authCfg)
	if err != nil {
		return nil, err
	}
	st := store.New(DynamoDBClient(awsCfg, getenv), tables)
	var limiter routing.Limiter
	if rate > 0 {
		limiter = st.NewRateLimiter(rate)
	}
	notifier := func(endpoint string) routing.Notifier {
		return notify.New(connections.New(endpoint, awsCfg), st, logger)
	}
	return routing.New(reg, st, limiter, verifier, notifier, metrics.New(metricsOut, "router"), cfg, logger), nil
}

// routerConfig reads the router's limits, reporting every bad value at once.
func routerConfig(getenv config.Getenv) (routing.Config, float64, error) {
	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	cfg := routing.Config{Endpoint: getenv(config.EnvConnectionsEndpoint)}
	rate, err := config.Float(getenv, config.EnvRateLimit, DefaultRateLimit)
	check(err)
	cfg.TenantMaxInflight, err = config.Int(getenv, config.EnvTenantMaxInflight, routing.DefaultTenantMaxInflight)
	check(err)
	cfg.TenantMaxConnections, err = config.Int(getenv, config.EnvTenantMaxConnections, 0)
	check(err)
	cfg.MaxPayloadBytes, err = config.Int(getenv, config.EnvMaxPayloadBytes, protocol.DefaultMaxPayloadBytes)
	check(err)
	cfg.SyncTimeout, err = config.Duration(getenv, config.EnvSyncTimeout, actions.DefaultSyncTimeout)
	check(err)
	cfg.ConnectionTTL, err = config.Duration(getenv, config.EnvConnectionTTL, routing.DefaultConnectionTTL)
	check(err)
	cfg.RequestTTL, err = config.Duration(getenv, config.EnvRequestTTL, routing.DefaultRequestTTL)
	check(err)
	if cfg.MaxPayloadBytes > connections.MaxMessageBytes {
		errs = append(errs, fmt.Errorf("config: %s=%d exceeds API Gateway's %d-byte message limit", config.EnvMaxPayloadBytes, cfg.MaxPayloadBytes, connections.MaxMessageBytes))
	}
	return cfg, rate, errors.Join(errs...)
}

// StartRouter runs the router Lambda: it builds everything from the process
// environment and the default AWS configuration, then serves events. It only
// returns by exiting the process on a configuration error.
func StartRouter(reg *actions.Registry) {
	ctx := context.Background()
	logger := NewLogger("router", os.Getenv)
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		logger.Error("load AWS config", "error", err)
		os.Exit(1)
	}
	h, err := NewRouter(ctx, awsCfg, os.Getenv, reg, logger, os.Stdout)
	if err != nil {
		logger.Error("build router", "error", err)
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}
