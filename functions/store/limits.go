package store

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamer-dev/streamer/functions/schema"
)

// AttrRateTAT holds a connection's rate-limit state on its item: the GCRA
// "theoretical arrival time" of the next message, in epoch microseconds.
const AttrRateTAT = "RateTAT"

// maxCachedConnections bounds the per-process rate-limit cache.
const maxCachedConnections = 10000

// errContention: other instances kept moving the connection's state.
var errContention = errors.New("rate limit: too much contention on the connection item")

// RateLimiter is a per-connection token bucket — perSecond messages a second
// with a burst of twice that — kept on the connection item as one GCRA
// timestamp, so it holds across Lambda instances. A message moves the
// timestamp with one conditional update: an idle bucket's is set to now plus
// one interval, a busy bucket's is advanced by one interval with ADD while it
// stays within the burst. ADDs commute, so a connection's messages handled at
// the same time do not race each other; only a bucket turning busy costs its
// losers one more write. Each instance caches the last timestamp it saw to
// save a read; a stale cache costs one failed condition, which returns the
// current value.
//
// A write reserves up to a quarter of the burst (at most maxChunk tokens) for
// the instance that makes it, which admits the next messages of that
// connection from its reservation without writing. The tokens are counted in
// the shared bucket when reserved, so instances together never admit more
// than the bucket allows; an instance's unused tokens lapse after the burst
// window, so a reservation cannot be saved up for a later burst.
type RateLimiter struct {
	store    *Store
	interval int64 // µs between messages at the steady rate
	tau      int64 // µs of burst tolerance
	chunk    int64 // tokens reserved by one write

	mu    sync.Mutex
	cache map[string]cachedConn
}

// maxChunk bounds the tokens one write reserves.
const maxChunk = 16

type cachedConn struct {
	tat  int64
	conn Connection
	// credit counts the tokens this instance reserved and has not used yet;
	// creditAt is when it reserved them (µs).
	credit   int64
	creditAt int64
}

// Admission is the outcome of RateLimiter.Take.
type Admission struct {
	// Connection is the caller's connection as stored.
	Connection Connection
	// RetryAfter is zero when the message is admitted, else how long until the
	// next one would be.
	RetryAfter time.Duration
}

// NewRateLimiter returns a limiter of perSecond messages per second per
// connection with a burst of 2×perSecond; perSecond must be positive.
func (s *Store) NewRateLimiter(perSecond float64) *RateLimiter {
	interval := int64(float64(time.Second/time.Microsecond) / perSecond)
	return &RateLimiter{store: s, interval: interval, tau: int64(max(2*perSecond, 1) * float64(interval)),
		chunk: max(1, min(maxChunk, int64(perSecond/2))), cache: map[string]cachedConn{}}
}

// spend admits a message from the instance's reserved tokens, if it holds
// any that have not lapsed.
func (l *RateLimiter) spend(id string, now int64) (Connection, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.cache[id]
	if !ok || c.credit == 0 || now-c.creditAt > l.tau {
		return Connection{}, false
	}
	c.credit--
	l.cache[id] = c
	return c.conn, true
}

// grant is how many tokens a write at now should reserve on a bucket whose
// timestamp is tat: up to the chunk, within the burst; 0 when it is full.
func (l *RateLimiter) grant(tat, now int64) int64 {
	if l.interval == 0 {
		return l.chunk
	}
	return min(l.chunk, (now+l.tau-max(tat, now))/l.interval)
}

// Take admits or refuses one message of the connection and returns the
// connection item. ErrNotFound when the connection does not exist.
func (l *RateLimiter) Take(ctx context.Context, connectionID string) (Admission, error) {
	if conn, ok := l.spend(connectionID, l.store.now().UnixMicro()); ok {
		return Admission{Connection: conn}, nil
	}
	l.mu.Lock()
	c, known := l.cache[connectionID]
	l.mu.Unlock()
	for range 5 {
		now := l.store.now().UnixMicro()
		next := max(c.tat, now) + l.interval
		if wait := next - now - l.tau; known && wait > 0 {
			// Refusing needs no write: the stored value is at least the cached one.
			return Admission{Connection: c.conn, RetryAfter: time.Duration(wait) * time.Microsecond}, nil
		}
		n := max(1, l.grant(c.tat, now))
		item, ok, err := l.advance(ctx, connectionID, c.tat > now, now, n)
		if err != nil {
			return Admission{}, err
		}
		var conn Connection
		if err := attributevalue.UnmarshalMap(item, &conn); err != nil {
			return Admission{}, wrap("rate limit", err)
		}
		if l.store.expired(conn.TTL) {
			return Admission{}, ErrNotFound
		}
		c, known = cachedConn{tat: int64(numberAttr(item, AttrRateTAT)), conn: conn}, true
		if ok {
			c.credit, c.creditAt = n-1, now
		}
		l.remember(connectionID, c)
		if ok {
			return Admission{Connection: conn}, nil
		}
	}
	return Admission{}, errContention
}

// advance reserves n tokens at now: on a busy bucket (timestamp after now)
// it adds n intervals while the result stays within the burst; on an idle
// one it sets the timestamp to now plus n intervals. It returns the item
// after the write, or the current item and ok = false when the condition
// failed (the bucket was not as busy as thought, or it is too full).
func (l *RateLimiter) advance(ctx context.Context, id string, busy bool, now, n int64) (map[string]types.AttributeValue, bool, error) {
	tat := expression.Name(AttrRateTAT)
	update := expression.Set(tat, expression.Value(now+n*l.interval))
	cond := expression.Or(expression.AttributeNotExists(tat), tat.LessThanEqual(expression.Value(now)))
	if busy {
		update = expression.Add(tat, expression.Value(n*l.interval))
		cond = expression.And(tat.GreaterThan(expression.Value(now)), tat.LessThanEqual(expression.Value(now+l.tau-n*l.interval)))
	}
	u, err := l.connUpdate(id, update, cond)
	if err != nil {
		return nil, false, err
	}
	in := updateInput(u)
	in.ReturnValues = types.ReturnValueAllNew
	in.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
	out, err := l.store.db.UpdateItem(ctx, in)
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		if len(ccf.Item) == 0 {
			return nil, false, ErrNotFound
		}
		return ccf.Item, false, nil
	case err != nil:
		return nil, false, wrap("rate limit", err)
	}
	return out.Attributes, true, nil
}

// tatUpdate is the conditional update that moves the connection's TAT from
// old (none yet when old is 0) to next.
func (l *RateLimiter) tatUpdate(id string, old, next int64) (*types.Update, error) {
	name := expression.Name(AttrRateTAT)
	cond := name.Equal(expression.Value(old))
	if old == 0 {
		cond = expression.Or(expression.AttributeNotExists(name), cond)
	}
	return l.connUpdate(id, expression.Set(name, expression.Value(next)), cond)
}

// connUpdate is update on the connection's item, on condition that it
// exists and cond holds.
func (l *RateLimiter) connUpdate(id string, update expression.UpdateBuilder, cond expression.ConditionBuilder) (*types.Update, error) {
	expr, err := expression.NewBuilder().WithUpdate(update).
		WithCondition(expression.And(expression.AttributeExists(expression.Name(schema.AttrConnectionID)), cond)).Build()
	if err != nil {
		return nil, wrap("rate limit", err)
	}
	return &types.Update{
		TableName:                 aws.String(l.store.tables.Connections),
		Key:                       connKey(id),
		UpdateExpression:          expr.Update(),
		ConditionExpression:       expr.Condition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	}, nil
}

// Reservation admits a message from the limiter's cache alone. Its Tx, when
// there is one (none when the instance's reserved tokens admitted the
// message), advances the stored state and must be part of the transaction
// that acts on the message: if the cache was stale the transaction fails on
// Tx's condition, and the caller falls back to Take. Commit records a
// successful transaction.
type Reservation struct {
	Connection Connection
	Tx         []types.TransactWriteItem

	limiter *RateLimiter
	id      string
	next    int64
	tokens  int64
	at      int64
}

// Reserve returns a reservation when the cache knows the connection and admits
// the message; otherwise ok is false and the caller uses Take. It saves the
// separate write of Take on the hot path of async requests.
func (l *RateLimiter) Reserve(connectionID string) (res Reservation, ok bool) {
	now := l.store.now().UnixMicro()
	if conn, ok := l.spend(connectionID, now); ok {
		return Reservation{Connection: conn}, true
	}
	l.mu.Lock()
	c, known := l.cache[connectionID]
	l.mu.Unlock()
	if !known {
		return res, false
	}
	n := l.grant(c.tat, now)
	if n < 1 {
		return res, false
	}
	next := max(c.tat, now) + n*l.interval
	u, err := l.tatUpdate(connectionID, c.tat, next)
	if err != nil {
		return res, false
	}
	return Reservation{Connection: c.conn, Tx: []types.TransactWriteItem{{Update: u}}, limiter: l, id: connectionID, next: next, tokens: n, at: now}, true
}

// Commit records that the reservation's transaction succeeded.
func (r Reservation) Commit() {
	if len(r.Tx) == 0 {
		return // admitted from reserved tokens
	}
	r.limiter.mu.Lock()
	defer r.limiter.mu.Unlock()
	if c, ok := r.limiter.cache[r.id]; ok && c.tat < r.next {
		c.tat, c.credit, c.creditAt = r.next, r.tokens-1, r.at
		r.limiter.cache[r.id] = c
	}
}

func (l *RateLimiter) remember(id string, c cachedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.cache) >= maxCachedConnections {
		clear(l.cache)
	}
	l.cache[id] = c
}

// Forget drops a connection from the cache (on $disconnect).
func (l *RateLimiter) Forget(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.cache, id)
}
