package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamer-dev/streamer/functions/config"
)

// DB is the subset of the DynamoDB API the store uses; *dynamodb.Client
// implements it.
type DB interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
}

var _ DB = (*dynamodb.Client)(nil)

// Errors the store returns; test them with errors.Is.
var (
	// ErrNotFound: no such item (or it expired, or it belongs to another tenant).
	ErrNotFound = errors.New("not found")
	// ErrTenantConnectionLimit: the tenant has as many connections as allowed.
	ErrTenantConnectionLimit = errors.New("tenant connection limit reached")
	// ErrTenantInflightLimit: the tenant has as many unfinished requests as allowed.
	ErrTenantInflightLimit = errors.New("tenant in-flight request limit reached")
	// ErrFinal: the request is already final (COMPLETED, FAILED or CANCELLED).
	ErrFinal = errors.New("request already final")
	// ErrStale: a condition of an extra transaction item failed (a stale
	// rate-limit reservation); nothing was written.
	ErrStale = errors.New("stale reservation")
)

// Store reads and writes Streamer's three tables. It is safe for concurrent use.
type Store struct {
	db     DB
	tables config.Tables
	now    func() time.Time
}

// New returns a store over db for the named tables.
func New(db DB, tables config.Tables) *Store {
	return &Store{db: db, tables: tables, now: time.Now}
}

// Tables returns the table names the store uses.
func (s *Store) Tables() config.Tables { return s.tables }

// expired reports whether an item with epoch-seconds ttl has expired: DynamoDB
// deletes expired items up to days late, so reads check TTL themselves.
func (s *Store) expired(ttl int64) bool {
	return ttl > 0 && ttl <= s.now().Unix()
}

// conditionFailed reports whether err is a failed condition of a single write.
func conditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// cancelReasons returns the per-item reason codes of a cancelled transaction,
// or nil when err is something else.
func cancelReasons(err error) []types.CancellationReason {
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) {
		return tce.CancellationReasons
	}
	return nil
}

func reasonIs(reasons []types.CancellationReason, i int, code string) bool {
	return i < len(reasons) && reasons[i].Code != nil && *reasons[i].Code == code
}

// extraFailed reports whether a condition of an item at index from or later failed.
func extraFailed(reasons []types.CancellationReason, from int) bool {
	for i := from; i < len(reasons); i++ {
		if reasonIs(reasons, i, codeConditionFailed) {
			return true
		}
	}
	return false
}

const (
	codeConditionFailed = "ConditionalCheckFailed"
	codeConflict        = "TransactionConflict"
)

// maxConflictRetries bounds the retries of a transaction cancelled by
// conflicts alone: many submissions of one tenant at once all update its
// counter item.
const maxConflictRetries = 8

// transact runs a transaction, retrying it a few times with jittered backoff
// while it is cancelled only because of a concurrent transaction on the same
// items (TransactionConflict); any other outcome is returned as is.
func (s *Store) transact(ctx context.Context, in *dynamodb.TransactWriteItemsInput) error {
	for attempt := 0; ; attempt++ {
		_, err := s.db.TransactWriteItems(ctx, in)
		if err == nil || attempt == maxConflictRetries || !conflictOnly(cancelReasons(err)) {
			return err
		}
		t := time.NewTimer(time.Duration(rand.Int64N(int64(min(5*time.Millisecond<<attempt, 200*time.Millisecond)))))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// conflictOnly reports whether a cancelled transaction failed on conflicts
// alone, with no failed condition.
func conflictOnly(reasons []types.CancellationReason) bool {
	conflict := false
	for i := range reasons {
		switch {
		case reasonIs(reasons, i, codeConflict):
			conflict = true
		case reasonIs(reasons, i, codeConditionFailed):
			return false
		}
	}
	return conflict
}

func wrap(op string, err error) error { return fmt.Errorf("%s: %w", op, err) }
