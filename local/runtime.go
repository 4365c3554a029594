// Package local runs the whole of Streamer on one machine with no AWS
// account: DynamoDB Local with the three tables, an SQS-compatible server with
// the retry and dead-letter queues, the real router and processor code, an API
// Gateway-like WebSocket endpoint with the @connections API, a poller on the
// requests table's stream, and the web page, all on one address.
package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/streamer-dev/streamer/functions/actions"
	"github.com/streamer-dev/streamer/functions/app"
	"github.com/streamer-dev/streamer/functions/auth"
	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/functions/demo"
	"github.com/streamer-dev/streamer/functions/processing"
	"github.com/streamer-dev/streamer/functions/store"
	"github.com/streamer-dev/streamer/internal/ddblocal"
	"github.com/streamer-dev/streamer/local/gateway"
	"github.com/streamer-dev/streamer/local/sqslocal"
	"github.com/streamer-dev/streamer/local/streams"
)

// DevJWTSecret is the HS256 key of the local runtime when none is given. It
// is public: never use it anywhere but on a developer's machine.
const DevJWTSecret = "streamer-local-development-key-do-not-use-in-production"

// DefaultAddr is where the runtime listens when Options.Addr is empty.
const DefaultAddr = "127.0.0.1:8080"

// Deployed defaults the runtime mirrors (constructs/props.go, streamer.go).
const (
	// ProcessorTimeout is the processor Lambda's timeout.
	ProcessorTimeout = 15 * time.Minute
	// RetryQueueBatchSize is the retry queue mapping's batch size.
	RetryQueueBatchSize = 5
	// RetryMaxReceiveCount sends a retry message to its dead-letter queue
	// after this many receives.
	RetryMaxReceiveCount = 5
	// RetryQueuePollers is how many retry-queue batches run at once: Lambda's
	// SQS event source mapping starts with five concurrent pollers (and scales
	// up from there; the construct sets no maximum concurrency).
	RetryQueuePollers = 5
)

// Options configure a Runtime. Zero values give `make dev`'s defaults.
type Options struct {
	// Addr is the listen address of the page, WebSocket endpoint and
	// @connections API. Default DefaultAddr; "127.0.0.1:0" picks a free port.
	Addr string
	// DynamoDBEndpoint uses that DynamoDB instead of starting DynamoDB Local.
	DynamoDBEndpoint string
	// TablePrefix prefixes the three table names. Default "streamer_".
	TablePrefix string
	// JWTSecret is the HS256 key tokens are signed with. Default DevJWTSecret.
	JWTSecret string
	// Env overrides the Lambdas' environment (config.Env* names), e.g.
	// STREAMER_RATE_LIMIT or STREAMER_TENANT_MAX_INFLIGHT.
	Env map[string]string
	// Registry holds the actions. Default: the demo actions.
	Registry *actions.Registry
	// Logger receives the runtime's, router's and processor's logs.
	// Default: discarded.
	Logger *slog.Logger
	// Metrics receives the router's and processor's CloudWatch EMF records,
	// one JSON line per Write, as Lambda would print them; both write to it
	// at once, so it must be safe for concurrent use (os.Stdout is).
	// Default: discarded.
	Metrics io.Writer
	// Gateway tunes the WebSocket endpoint (idle timeout, lifetime cap).
	Gateway gateway.Options
	// ProcessorTimeout is the processor's invocation timeout, as the
	// construct's ProcessorTimeoutSeconds: it bounds every run, and so its
	// lease. Default ProcessorTimeout.
	ProcessorTimeout time.Duration
	// DevToken serves a fresh development token (DevTenant, DevUser) at
	// /dev/token, which the page prefills. Only for a developer's machine.
	DevToken bool
}

// Runtime is a running local Streamer.
type Runtime struct {
	addr     string
	tables   ddblocal.TableNames
	ddb      *dynamodb.Client
	sqs      *sqs.Client
	secret   string
	devToken bool
	queues   Queues
	gw       *gateway.Gateway
	getenv   config.Getenv

	ddbLocal *ddblocal.Instance
	sqsLocal *sqslocal.Instance
	http     *http.Server
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
	stopErr  error
}

// Queues are the URLs of the runtime's SQS queues.
type Queues struct {
	// Retry re-triggers due retries and scheduled requests.
	Retry string
	// RetryDeadLetter receives retry messages received too often.
	RetryDeadLetter string
	// DeadLetter receives requests that exhausted their retries and stream
	// batches that exhausted theirs.
	DeadLetter string
}

// Start starts everything and returns once the runtime serves. Stop ends it.
func Start(ctx context.Context, opts Options) (rt *Runtime, err error) {
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if opts.TablePrefix == "" {
		opts.TablePrefix = "streamer_"
	}
	if opts.JWTSecret == "" {
		opts.JWTSecret = DevJWTSecret
	}
	if opts.Registry == nil {
		opts.Registry = actions.NewRegistry()
		demo.Register(opts.Registry)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = io.Discard
	}
	if opts.ProcessorTimeout <= 0 {
		opts.ProcessorTimeout = ProcessorTimeout
	}
	rt = &Runtime{secret: opts.JWTSecret, devToken: opts.DevToken, tables: ddblocal.Prefixed(opts.TablePrefix)}
	defer func() {
		if err != nil {
			_ = rt.Stop()
		}
	}()
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return rt, fmt.Errorf("local: listen: %w", err)
	}
	rt.addr = ln.Addr().String()
	rt.http = &http.Server{ReadHeaderTimeout: 10 * time.Second}
	endpoint := opts.DynamoDBEndpoint
	if endpoint == "" {
		if rt.ddbLocal, err = ddblocal.Start(ctx); err != nil {
			_ = ln.Close()
			return rt, fmt.Errorf("local: start DynamoDB Local: %w", err)
		}
		endpoint = rt.ddbLocal.Endpoint
	}
	rt.ddb = ddblocal.NewClient(endpoint)
	if err := ddblocal.CreateTables(ctx, rt.ddb, rt.tables); err != nil {
		_ = ln.Close()
		return rt, fmt.Errorf("local: create tables: %w", err)
	}
	if rt.sqsLocal, err = sqslocal.Start("127.0.0.1:0"); err != nil {
		_ = ln.Close()
		return rt, err
	}
	rt.sqs = sqslocal.NewClient(rt.sqsLocal.URL)
	if rt.queues, err = createQueues(ctx, rt.sqs, opts.ProcessorTimeout); err != nil {
		_ = ln.Close()
		return rt, err
	}
	getenv := rt.environment(endpoint, opts)
	rt.getenv = getenv

	awsCfg := ddblocal.AWSConfig()
	router, err := app.NewRouter(ctx, awsCfg, getenv, opts.Registry, opts.Logger.With("component", "router"), opts.Metrics)
	if err != nil {
		_ = ln.Close()
		return rt, fmt.Errorf("local: router: %w", err)
	}
	proc, err := app.NewProcessor(ctx, awsCfg, getenv, opts.Registry, opts.Logger.With("component", "processor"), opts.Metrics)
	if err != nil {
		_ = ln.Close()
		return rt, fmt.Errorf("local: processor: %w", err)
	}

	if err := rearm(ctx, rt.Store(), proc); err != nil {
		_ = ln.Close()
		return rt, err
	}

	gwOpts := opts.Gateway
	gwOpts.Logger = opts.Logger.With("component", "gateway")
	rt.gw = gateway.New(router.Handle, gwOpts)
	rt.http.Handler = rt.mux()

	runCtx, cancel := context.WithCancel(context.Background())
	rt.cancel = cancel
	log := opts.Logger.With("component", "local")
	sp := streams.NewPoller(ddblocal.NewStreamsClient(endpoint), rt.tables.Requests, proc.HandleStream, rt.toDeadLetter, log)
	sp.Timeout = opts.ProcessorTimeout
	qp := sqslocal.NewPoller(rt.sqs, rt.queues.Retry, proc.HandleQueue, log)
	qp.BatchSize, qp.Timeout = RetryQueueBatchSize, opts.ProcessorTimeout
	pollers := map[string]func(context.Context) error{"stream poller": sp.Run}
	for i := range RetryQueuePollers {
		pollers[fmt.Sprintf("retry queue poller %d", i+1)] = qp.Run
	}
	for name, run := range pollers {
		rt.wg.Add(1)
		go func() {
			defer rt.wg.Done()
			if err := run(runCtx); err != nil {
				log.Error(name, "error", err)
			}
		}()
	}
	rt.wg.Add(1)
	go func() {
		defer rt.wg.Done()
		if err := rt.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("serve", "error", err)
		}
	}()
	return rt, nil
}

// environment is what the Lambdas read: the runtime's own wiring, then the
// caller's overrides.
func (rt *Runtime) environment(ddbEndpoint string, opts Options) config.Getenv {
	env := map[string]string{
		config.EnvConnectionsTable:    rt.tables.Connections,
		config.EnvRequestsTable:       rt.tables.Requests,
		config.EnvSubscriptionsTable:  rt.tables.Subscriptions,
		config.EnvConnectionsEndpoint: "http://" + rt.addr + "/" + stage(opts.Gateway),
		config.EnvRetryQueueURL:       rt.queues.Retry,
		config.EnvDeadLetterQueueURL:  rt.queues.DeadLetter,
		config.EnvJWTSecret:           opts.JWTSecret,
		config.EnvDynamoDBEndpoint:    ddbEndpoint,
		config.EnvSQSEndpoint:         rt.sqsLocal.URL,
	}
	for k, v := range opts.Env {
		env[k] = v
	}
	return func(name string) string { return env[name] }
}

func stage(o gateway.Options) string {
	if o.Stage == "" {
		return "local"
	}
	return o.Stage
}

// rearm sends again the wake-ups of the requests left open in the tables (by
// a runtime that crashed on them): the queue is in memory and lost them,
// where SQS would have kept them. Without it a request PROCESSING when its
// runtime died would never be reclaimed.
func rearm(ctx context.Context, st *store.Store, proc *processing.Handler) error {
	for _, status := range []store.Status{store.StatusPending, store.StatusRetrying, store.StatusProcessing} {
		rs, err := st.RequestsInStatus(ctx, status)
		if err != nil {
			return fmt.Errorf("local: re-arm wake-ups: %w", err)
		}
		for _, r := range rs {
			if err := proc.Rearm(ctx, r); err != nil {
				return fmt.Errorf("local: re-arm wake-ups: %w", err)
			}
		}
	}
	return nil
}

// createQueues creates the retry queue with its own dead-letter queue, and
// the dead-letter queue of failed requests, as the construct deploys them
// for a processor with timeout processorTimeout.
func createQueues(ctx context.Context, c *sqs.Client, processorTimeout time.Duration) (Queues, error) {
	var q Queues
	mk := func(name string, attrs map[string]string) (string, error) {
		out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
		if err != nil {
			return "", fmt.Errorf("local: create queue %s: %w", name, err)
		}
		return aws.ToString(out.QueueUrl), nil
	}
	var err error
	if q.DeadLetter, err = mk("streamer-dlq", nil); err != nil {
		return q, err
	}
	if q.RetryDeadLetter, err = mk("streamer-retry-dlq", nil); err != nil {
		return q, err
	}
	attrs, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(q.RetryDeadLetter), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return q, fmt.Errorf("local: retry dead-letter queue arn: %w", err)
	}
	q.Retry, err = mk("streamer-retry", map[string]string{
		"VisibilityTimeout": strconv.Itoa(int(6 * processorTimeout / time.Second)),
		"RedrivePolicy":     fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":%d}`, attrs.Attributes["QueueArn"], RetryMaxReceiveCount),
	})
	return q, err
}

// toDeadLetter is the stream mapping's on-failure destination.
func (rt *Runtime) toDeadLetter(ctx context.Context, body string) error {
	_, err := rt.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(rt.queues.DeadLetter), MessageBody: aws.String(body)})
	return err
}

// mux serves WebSocket upgrades on any path, the @connections API and the page.
func (rt *Runtime) mux() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case gateway.IsWebSocket(r):
			rt.gw.ServeHTTP(w, r)
		case strings.HasPrefix(r.URL.Path, rt.gw.ConnectionsPath()+"/@connections/"):
			rt.gw.ServeHTTP(w, r)
		default:
			rt.servePage(w, r)
		}
	})
}

// URL is the page's URL, http://ADDR/.
func (rt *Runtime) URL() string { return "http://" + rt.addr + "/" }

// WSURL is the WebSocket endpoint, ws://ADDR/.
func (rt *Runtime) WSURL() string { return "ws://" + rt.addr + "/" }

// Addr is the listen address.
func (rt *Runtime) Addr() string { return rt.addr }

// Tables are the names of the runtime's tables.
func (rt *Runtime) Tables() ddblocal.TableNames { return rt.tables }

// DynamoDB is a client of the runtime's DynamoDB.
func (rt *Runtime) DynamoDB() *dynamodb.Client { return rt.ddb }

// SQS is a client of the runtime's queues.
func (rt *Runtime) SQS() *sqs.Client { return rt.sqs }

// Store reads and writes the runtime's tables as the router and processor do.
func (rt *Runtime) Store() *store.Store {
	return store.New(rt.ddb, config.Tables{Connections: rt.tables.Connections, Requests: rt.tables.Requests, Subscriptions: rt.tables.Subscriptions})
}

// Queues are the URLs of the runtime's queues.
func (rt *Runtime) Queues() Queues { return rt.queues }

// Environment is what the runtime's router and processor read (tables,
// queues, @connections endpoint, overrides), to build another processor on
// the same tables and queues (a test replaying deliveries, say).
func (rt *Runtime) Environment() config.Getenv { return rt.getenv }

// Connections is the number of open WebSocket connections.
func (rt *Runtime) Connections() int { return rt.gw.Count() }

// DisconnectAll closes every WebSocket connection with 1001 (going away).
func (rt *Runtime) DisconnectAll() { rt.gw.DisconnectAll() }

// Token mints an HS256 token for user in tenant with every permission,
// valid for ttl.
func (rt *Runtime) Token(tenant, user string, ttl time.Duration) (string, error) {
	return Token(rt.secret, tenant, user, []string{"*"}, ttl)
}

// Token mints an HS256 token signed with secret.
func Token(secret, tenant, user string, permissions []string, ttl time.Duration) (string, error) {
	return auth.Issue(auth.HMACKey{Key: []byte(secret)}, auth.Identity{UserID: user, TenantID: tenant, Permissions: permissions}, ttl)
}

// UniquePrefix returns a random table prefix, for runtimes sharing one
// DynamoDB.
func UniquePrefix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "s" + hex.EncodeToString(b) + "_"
}

// Stop closes the connections (sending their $disconnect events), stops the
// pollers, the servers and DynamoDB Local when the runtime started it.
func (rt *Runtime) Stop() error {
	rt.stopOnce.Do(func() {
		var errs []error
		if rt.gw != nil {
			rt.gw.Close()
		}
		// The pollers stop first: runs in flight see their context end, so
		// their posts to @connections do not hold up the server's shutdown.
		if rt.cancel != nil {
			rt.cancel()
		}
		if rt.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := rt.http.Shutdown(ctx); err != nil {
				// A request still in flight (a post to a connection that
				// closes slowly) is cut off: the runtime is stopping.
				errs = append(errs, rt.http.Close())
			}
			cancel()
		}
		rt.wg.Wait()
		if rt.sqsLocal != nil {
			errs = append(errs, rt.sqsLocal.Close())
		}
		if rt.ddbLocal != nil {
			errs = append(errs, rt.ddbLocal.Stop())
		}
		rt.stopErr = errors.Join(errs...)
	})
	return rt.stopErr
}
