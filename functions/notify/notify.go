// Package notify delivers frames to WebSocket clients: to one connection, or to
// every connection subscribed to a request. A connection that API Gateway
// reports gone is removed with its subscriptions, and delivery goes on.
package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/streamer-dev/streamer/functions/connections"
	"github.com/streamer-dev/streamer/functions/store"
)

// ErrGone is returned by Send when the connection no longer exists.
var ErrGone = connections.ErrGone

// Poster posts a message to a connection (*connections.Client).
type Poster interface {
	Post(ctx context.Context, connectionID string, data []byte) error
}

// Store is the storage the notifier needs (*store.Store).
type Store interface {
	RemoveConnection(ctx context.Context, connectionID string) (store.Connection, error)
	RequestSubscriptions(ctx context.Context, requestKey string) ([]store.Subscription, error)
}

// parallelism bounds concurrent posts of one broadcast.
const parallelism = 16

// maxGone bounds the notifier's memory of gone connections.
const maxGone = 10000

// Audience is who follows a request: the connections subscribed to it (the
// request-subs index) and its submitter, which follows it implicitly until it
// unsubscribes.
type Audience struct {
	// RequestKey is the request's table key.
	RequestKey string
	// Submitter is the submitting connection, or "" when it unsubscribed.
	Submitter string
}

// AudienceOf returns the audience of r.
func AudienceOf(r store.Request) Audience {
	return Audience{RequestKey: r.RequestID, Submitter: r.Submitter()}
}

// Notifier sends frames. It is safe for concurrent use.
type Notifier struct {
	poster Poster
	store  Store
	logger *slog.Logger

	mu   sync.Mutex
	gone map[string]bool // connections API Gateway reported gone; ids are never reused
}

// New returns a notifier posting through poster.
func New(poster Poster, st Store, logger *slog.Logger) *Notifier {
	return &Notifier{poster: poster, store: st, logger: logger, gone: map[string]bool{}}
}

// Send marshals frame to JSON and posts it to the connection. When the
// connection is gone it is removed with its subscriptions and Send returns an
// error matching ErrGone.
func (n *Notifier) Send(ctx context.Context, connectionID string, frame any) error {
	data, err := json.Marshal(frame)
	if err != nil {
		return fmt.Errorf("send: marshal frame: %w", err)
	}
	return n.post(ctx, connectionID, data)
}

func (n *Notifier) post(ctx context.Context, connectionID string, data []byte) error {
	if n.isGone(connectionID) {
		return fmt.Errorf("send: %w", ErrGone)
	}
	err := n.poster.Post(ctx, connectionID, data)
	if errors.Is(err, connections.ErrGone) {
		n.markGone(connectionID)
		if _, rmErr := n.store.RemoveConnection(ctx, connectionID); rmErr != nil {
			n.logger.WarnContext(ctx, "remove gone connection", "connection_id", connectionID, "error", rmErr)
		} else {
			n.logger.InfoContext(ctx, "removed gone connection", "connection_id", connectionID)
		}
	}
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

func (n *Notifier) isGone(connectionID string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.gone[connectionID]
}

func (n *Notifier) markGone(connectionID string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.gone) >= maxGone {
		clear(n.gone)
	}
	n.gone[connectionID] = true
}

// Broadcast sends frame to every connection of the audience whose
// subscription selects eventType (protocol.EventProgress or
// protocol.EventComplete); the submitter's implicit subscription selects every
// type unless the submitter also holds a subscription item, which then rules.
// Gone connections are removed and skipped; other failures are joined into the
// returned error after every subscriber was tried. sent counts successful
// deliveries.
func (n *Notifier) Broadcast(ctx context.Context, a Audience, eventType string, frame any) (sent int, err error) {
	data, err := json.Marshal(frame)
	if err != nil {
		return 0, fmt.Errorf("broadcast: marshal frame: %w", err)
	}
	subs, err := n.store.RequestSubscriptions(ctx, a.RequestKey)
	if err != nil {
		return 0, fmt.Errorf("broadcast: %w", err)
	}
	if a.Submitter != "" && !slices.ContainsFunc(subs, func(s store.Subscription) bool { return s.ConnectionID == a.Submitter }) {
		subs = append(subs, store.Subscription{ConnectionID: a.Submitter, RequestID: a.RequestKey})
	}
	var (
		mu   sync.Mutex
		errs []error
		g    errgroup.Group
	)
	g.SetLimit(parallelism)
	for _, sub := range subs {
		if !sub.Wants(eventType) {
			continue
		}
		g.Go(func() error {
			err := n.post(ctx, sub.ConnectionID, data)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				sent++
			case !errors.Is(err, connections.ErrGone):
				errs = append(errs, fmt.Errorf("connection %s: %w", sub.ConnectionID, err))
			}
			return nil
		})
	}
	_ = g.Wait() // the goroutines collect their errors in errs
	if len(errs) > 0 {
		return sent, fmt.Errorf("broadcast %s: %w", a.RequestKey, errors.Join(errs...))
	}
	return sent, nil
}
