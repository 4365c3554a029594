// Command streamer-dev runs the whole of Streamer on this machine (`make dev`)
// and mints development tokens (`make token`).
//
//	streamer-dev [-metrics]                   run until Ctrl-C; -metrics prints the EMF metric records on stdout
//	streamer-dev token -tenant acme -user alice [-ttl 24h] [-permissions echo,delay]
//
// Configuration by environment: STREAMER_ADDR (default 127.0.0.1:8080),
// STREAMER_JWT_SECRET (default: a fixed, public development key),
// DYNAMODB_ENDPOINT (use that DynamoDB instead of starting DynamoDB Local),
// STREAMER_TABLE_PREFIX (default streamer_, for runtimes sharing a DynamoDB),
// STREAMER_PROCESSOR_TIMEOUT (default 15m, as deployed; it bounds every run
// and its lease, so a shorter one reclaims a crashed run sooner),
// STREAMER_LOG_LEVEL, and every variable the Lambdas read
// (STREAMER_RATE_LIMIT, STREAMER_TENANT_MAX_INFLIGHT, ...).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/local"
)

func main() {
	if err := run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "streamer-dev:", err)
		os.Exit(1)
	}
}

func run(args []string, getenv config.Getenv, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "token" {
		return token(args[1:], getenv, stdout)
	}
	fs := flag.NewFlagSet("streamer-dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	showMetrics := fs.Bool("metrics", false, "print the router's and processor's CloudWatch EMF metric records on stdout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var metrics io.Writer
	if *showMetrics {
		metrics = stdout
	}
	return serve(getenv, stdout, stderr, metrics)
}

// secret is the HS256 key: STREAMER_JWT_SECRET or the development default.
func secret(getenv config.Getenv) string {
	if s := getenv(config.EnvJWTSecret); s != "" {
		return s
	}
	return local.DevJWTSecret
}

// keyShown is what the banner says of the HS256 key: the public development
// default is printed; a key of the user's own (STREAMER_JWT_SECRET) is a
// secret and is not.
func keyShown(getenv config.Getenv) (key, note string) {
	if getenv(config.EnvJWTSecret) != "" {
		return "(not shown)", "from STREAMER_JWT_SECRET"
	}
	return local.DevJWTSecret, "the development default; set STREAMER_JWT_SECRET to change it"
}

func token(args []string, getenv config.Getenv, stdout io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	tenant := fs.String("tenant", local.DevTenant, "tenant_id claim")
	user := fs.String("user", local.DevUser, "sub claim")
	ttl := fs.Duration("ttl", local.DevTokenTTL, "lifetime")
	perms := fs.String("permissions", "*", "comma-separated actions the user may run; * for all")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tok, err := local.Token(secret(getenv), *tenant, *user, strings.Split(*perms, ","), *ttl)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

// lambdaEnv passes the Lambdas' variables (STREAMER_*, but for the command's
// own) through to the router and processor.
func lambdaEnv() map[string]string {
	own := map[string]bool{config.EnvAddr: true, config.EnvTablePrefix: true, config.EnvProcessorTimeout: true}
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "STREAMER_") && !own[k] {
			env[k] = v
		}
	}
	return env
}

// serve runs the runtime until a signal; metrics, when not nil, receives the
// EMF metric records.
func serve(getenv config.Getenv, stdout, stderr, metrics io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var level slog.Level
	if l := getenv(config.EnvLogLevel); l != "" {
		if err := level.UnmarshalText([]byte(l)); err != nil {
			return fmt.Errorf("%s: %w", config.EnvLogLevel, err)
		}
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	addr := getenv(config.EnvAddr)
	if addr == "" {
		addr = local.DefaultAddr
	}
	processorTimeout, err := config.Duration(getenv, config.EnvProcessorTimeout, local.ProcessorTimeout)
	if err != nil {
		return err
	}
	fmt.Fprintln(stderr, "starting Streamer (DynamoDB Local takes a few seconds)…")
	rt, err := local.Start(ctx, local.Options{
		Addr:             addr,
		DynamoDBEndpoint: getenv(config.EnvDynamoDBEndpoint),
		TablePrefix:      getenv(config.EnvTablePrefix),
		ProcessorTimeout: processorTimeout,
		JWTSecret:        secret(getenv),
		Env:              lambdaEnv(),
		Logger:           logger,
		Metrics:          metrics,
		DevToken:         true,
	})
	if err != nil {
		return err
	}
	tok, err := rt.Token(local.DevTenant, local.DevUser, local.DevTokenTTL)
	if err != nil {
		_ = rt.Stop()
		return err
	}
	key, keyNote := keyShown(getenv)
	fmt.Fprintf(stdout, `
Streamer is running.

  Page        %[1]s
  WebSocket   %[2]s   (token in the "token" query parameter or an Authorization: Bearer header)
  Tables      %[3]s, %[4]s, %[5]s
  HS256 key   %[6]s
              (%[7]s)

  Token (tenant %[8]q, user %[9]q, valid %[10]s):
  %[11]s

  Try it:     open %[1]s  (the token is prefilled), or
              go run ./client/cmd/streamer -url %[2]s -token %[11]s delay '{"seconds":3,"steps":6}'
  More tokens: make token TENANT=acme USER=alice

Ctrl-C stops everything.
`, rt.URL(), rt.WSURL(), rt.Tables().Connections, rt.Tables().Requests, rt.Tables().Subscriptions,
		key, keyNote, local.DevTenant, local.DevUser, strings.TrimSuffix(local.DevTokenTTL.String(), "0m0s"), tok)
	<-ctx.Done()
	fmt.Fprintln(stderr, "stopping…")
	stopped := make(chan error, 1)
	go func() { stopped <- rt.Stop() }()
	select {
	case err := <-stopped:
		return err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("stop: timed out")
	}
}
