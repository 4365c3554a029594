package store

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamer-dev/streamer/functions/schema"
)

// The processor's side of a request's life: claim with a lease, persist
// progress, then exactly one of Complete, Fail or ScheduleRetry. Every write
// after the claim is conditional on Status = PROCESSING and LeaseOwner = the
// claimant, so a cancelled or reclaimed request is never overwritten and a
// final request never changes again.

// ErrLeaseLost: the request is no longer PROCESSING under this owner (it was
// cancelled, or its lease expired and another run claimed it). Nothing was written.
var ErrLeaseLost = errors.New("request lease lost")

// MaxResultBytes bounds a stored result, leaving room under DynamoDB's 400 KB
// item limit for the rest of the request.
const MaxResultBytes = 350 << 10

// ErrResultTooLarge: the result exceeds MaxResultBytes; nothing was written.
var ErrResultTooLarge = errors.New("result too large to store")

// Attribute names written only by the lifecycle.
const (
	attrAttempt         = "Attempt"
	attrRetryCount      = "RetryCount"
	attrLeaseOwner      = "LeaseOwner"
	attrLeaseExpiresAt  = "LeaseExpiresAt"
	attrProgress        = "Progress"
	attrProgressMessage = "ProgressMessage"
	attrProgressAt      = "ProgressAt"
	attrCheckpoint      = "Checkpoint"
	attrResult          = "Result"
	attrError           = "Error"
	attrProcessedAt     = "ProcessedAt"
	attrFinishedBy      = "FinishedBy"
)

// names maps "#attr" placeholders to attribute names. DynamoDB rejects unused
// placeholders, so each expression passes exactly the ones it uses.
func names(attrs ...string) map[string]string {
	m := make(map[string]string, len(attrs))
	for _, a := range attrs {
		m["#"+a] = a
	}
	return m
}

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}
func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

// ownedCondition holds while owner's run is the live one.
const ownedCondition = "#Status = :processing AND #LeaseOwner = :owner"

// Claim moves the request with table key key to PROCESSING under owner, with
// a lease ending at leaseUntil, and counts the attempt. It succeeds when the
// request is PENDING or RETRYING and due (ProcessAfter ≤ now), or PROCESSING
// with an expired lease (a crashed or timed-out run), and not expired by TTL.
//
// claimed is false, with a nil error, when the claim is lost; the returned
// request is then the item as it stands (empty when there is none), so the
// caller can tell a future ProcessAfter from a final or running request.
func (s *Store) Claim(ctx context.Context, key, owner string, leaseUntil time.Time) (r Request, claimed bool, err error) {
	now := s.now()
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(s.tables.Requests),
		Key:       reqKey(key),
		UpdateExpression: aws.String("SET #Status = :processing, #LeaseOwner = :owner, #LeaseExpiresAt = :lease " +
			"ADD #Attempt :one REMOVE #ProcessAfter"),
		ConditionExpression: aws.String("attribute_exists(#RequestID) AND (#TTL = :zero OR #TTL > :nowSec) AND (" +
			"((#Status = :pending OR #Status = :retrying) AND (attribute_not_exists(#ProcessAfter) OR #ProcessAfter <= :now)) OR " +
			"(#Status = :processing AND #LeaseExpiresAt < :now))"),
		ExpressionAttributeNames: names(schema.AttrRequestID, schema.AttrStatus, schema.AttrTTL, schema.AttrProcessAfter,
			attrLeaseOwner, attrLeaseExpiresAt, attrAttempt),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":processing": str(string(StatusProcessing)),
			":pending":    str(string(StatusPending)),
			":retrying":   str(string(StatusRetrying)),
			":owner":      str(owner),
			":lease":      num(leaseUntil.UnixMilli()),
			":one":        num(1),
			":zero":       num(0),
			":now":        num(now.UnixMilli()),
			":nowSec":     num(now.Unix()),
		},
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var item map[string]types.AttributeValue
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		// An attempt whose answer was lost (a 500 or a timeout after the
		// write) and that the SDK retried may have applied this very claim:
		// owners are unique per run, so the lease is then ours.
		item, claimed = ccf.Item, ownedBy(ccf.Item, owner)
	case err != nil:
		return r, false, wrap("claim request", err)
	default:
		item, claimed = out.Attributes, true
	}
	if len(item) > 0 {
		if err := attributevalue.UnmarshalMap(item, &r); err != nil {
			return r, false, wrap("claim request", err)
		}
	}
	return r, claimed, nil
}

// ownedBy reports whether item is PROCESSING under owner's lease.
func ownedBy(item map[string]types.AttributeValue, owner string) bool {
	status, _ := item[schema.AttrStatus].(*types.AttributeValueMemberS)
	lease, _ := item[attrLeaseOwner].(*types.AttributeValueMemberS)
	return status != nil && lease != nil && status.Value == string(StatusProcessing) && lease.Value == owner
}

// Progress is a running request's last reported state.
type Progress struct {
	Percent float64
	Message string
	// Checkpoint is JSON text; empty leaves the stored checkpoint as it is.
	Checkpoint string
}

// SaveProgress persists p on the request while owner holds its lease.
// ErrLeaseLost when it does not.
func (s *Store) SaveProgress(ctx context.Context, key, owner string, p Progress) error {
	update := "SET #Progress = :progress, #ProgressMessage = :message, #ProgressAt = :now"
	attrs := []string{schema.AttrStatus, attrLeaseOwner, attrProgress, attrProgressMessage, attrProgressAt}
	values := map[string]types.AttributeValue{
		":processing": str(string(StatusProcessing)),
		":owner":      str(owner),
		":progress":   &types.AttributeValueMemberN{Value: strconv.FormatFloat(p.Percent, 'f', -1, 64)},
		":message":    str(p.Message),
		":now":        num(s.now().UnixMilli()),
	}
	if p.Checkpoint != "" {
		update += ", #Checkpoint = :checkpoint"
		attrs = append(attrs, attrCheckpoint)
		values[":checkpoint"] = str(p.Checkpoint)
	}
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.tables.Requests),
		Key:                       reqKey(key),
		UpdateExpression:          aws.String(update),
		ConditionExpression:       aws.String(ownedCondition),
		ExpressionAttributeNames:  names(attrs...),
		ExpressionAttributeValues: values,
	})
	return ownedResult("save progress", err)
}

func ownedResult(op string, err error) error {
	switch {
	case conditionFailed(err), reasonIs(cancelReasons(err), 0, codeConditionFailed):
		return ErrLeaseLost
	case err != nil:
		return wrap(op, err)
	}
	return nil
}

// Complete stores result (JSON text) and moves the request from PROCESSING
// under owner to COMPLETED, releasing its tenant's in-flight slot in the same
// transaction. ErrLeaseLost when owner no longer holds the lease;
// ErrResultTooLarge when the result cannot be stored.
func (s *Store) Complete(ctx context.Context, r Request, owner, result string) error {
	if len(result) > MaxResultBytes {
		return ErrResultTooLarge
	}
	return s.finish(ctx, r, owner, "complete request", StatusCompleted,
		"#Result = :result, #Progress = :hundred", "#Error",
		[]string{attrResult, attrProgress, attrError},
		map[string]types.AttributeValue{":result": str(result), ":hundred": num(100)})
}

// Fail records info and moves the request from PROCESSING under owner to
// FAILED, releasing its tenant's in-flight slot in the same transaction.
// ErrLeaseLost when owner no longer holds the lease.
func (s *Store) Fail(ctx context.Context, r Request, owner string, info ErrorInfo) error {
	av, err := attributevalue.Marshal(info)
	if err != nil {
		return wrap("fail request", err)
	}
	return s.finish(ctx, r, owner, "fail request", StatusFailed,
		"#Error = :error", "", []string{attrError}, map[string]types.AttributeValue{":error": av})
}

// finish runs a final transition in one transaction: the request's update
// (set and remove plus Status, ProcessedAt, FinishedBy and the lease
// removal) and the in-flight decrement. A transition this owner already
// applied — a write whose answers were all lost, written again — is success.
func (s *Store) finish(ctx context.Context, r Request, owner, op string, status Status, set, remove string, attrs []string, values map[string]types.AttributeValue) error {
	values[":processing"] = str(string(StatusProcessing))
	values[":owner"] = str(owner)
	values[":final"] = str(string(status))
	values[":now"] = num(s.now().UnixMilli())
	attrs = append(attrs, schema.AttrStatus, attrLeaseOwner, attrLeaseExpiresAt, attrProcessedAt, attrFinishedBy)
	update := "SET " + set + ", #Status = :final, #ProcessedAt = :now, #FinishedBy = :owner REMOVE #LeaseOwner, #LeaseExpiresAt"
	if remove != "" {
		update += ", " + remove
	}
	_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Update: &types.Update{
			TableName:                           aws.String(s.tables.Requests),
			Key:                                 reqKey(r.RequestID),
			UpdateExpression:                    aws.String(update),
			ConditionExpression:                 aws.String(ownedCondition),
			ExpressionAttributeNames:            names(attrs...),
			ExpressionAttributeValues:           values,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}},
		s.ReleaseInflightTx(r.TenantID),
	}})
	if reasons := cancelReasons(err); reasonIs(reasons, 0, codeConditionFailed) && finishedBy(reasons[0].Item, owner, status) {
		return nil
	}
	return ownedResult(op, err)
}

// finishedBy reports whether item was moved to status by owner's run.
func finishedBy(item map[string]types.AttributeValue, owner string, status Status) bool {
	st, _ := item[schema.AttrStatus].(*types.AttributeValueMemberS)
	by, _ := item[attrFinishedBy].(*types.AttributeValueMemberS)
	return st != nil && by != nil && st.Value == string(status) && by.Value == owner
}

// ScheduleRetry moves the request from PROCESSING under owner to RETRYING,
// due at due, counting the retry and recording the failure. The caller has
// already queued the message that will re-trigger it at due, so a crash
// between the two never strands the request. ErrLeaseLost when owner no longer
// holds the lease.
func (s *Store) ScheduleRetry(ctx context.Context, key, owner string, due time.Time, info ErrorInfo) error {
	av, err := attributevalue.Marshal(info)
	if err != nil {
		return wrap("schedule retry", err)
	}
	_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(s.tables.Requests),
		Key:       reqKey(key),
		UpdateExpression: aws.String("SET #Status = :retrying, #ProcessAfter = :due, #Error = :error " +
			"ADD #RetryCount :one REMOVE #LeaseOwner, #LeaseExpiresAt"),
		ConditionExpression: aws.String(ownedCondition),
		ExpressionAttributeNames: names(schema.AttrStatus, schema.AttrProcessAfter, attrError, attrRetryCount,
			attrLeaseOwner, attrLeaseExpiresAt),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":processing": str(string(StatusProcessing)),
			":retrying":   str(string(StatusRetrying)),
			":owner":      str(owner),
			":due":        num(due.UnixMilli()),
			":error":      av,
			":one":        num(1),
		},
	})
	return ownedResult("schedule retry", err)
}

// RequestByKey returns the request with table key key (a strongly consistent
// read). ErrNotFound when there is none, or it expired.
func (s *Store) RequestByKey(ctx context.Context, key string) (Request, error) {
	var r Request
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.tables.Requests),
		Key:            reqKey(key),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return r, wrap("get request", err)
	}
	if len(out.Item) == 0 {
		return r, ErrNotFound
	}
	if err := attributevalue.UnmarshalMap(out.Item, &r); err != nil {
		return r, wrap("get request", err)
	}
	if s.expired(r.TTL) {
		return r, ErrNotFound
	}
	return r, nil
}

// Owned reports whether owner still holds the lease of the request with table
// key key: a small consistent read of Status and LeaseOwner, which a running
// handler polls to learn of a cancel.
func (s *Store) Owned(ctx context.Context, key, owner string) (bool, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:                aws.String(s.tables.Requests),
		Key:                      reqKey(key),
		ConsistentRead:           aws.Bool(true),
		ProjectionExpression:     aws.String("#Status, #LeaseOwner"),
		ExpressionAttributeNames: names(schema.AttrStatus, attrLeaseOwner),
	})
	if err != nil {
		return false, wrap("check lease", err)
	}
	var r Request
	if err := attributevalue.UnmarshalMap(out.Item, &r); err != nil {
		return false, wrap("check lease", err)
	}
	return r.Status == StatusProcessing && r.LeaseOwner == owner, nil
}

// MaxPriority is the highest request priority; 0 is the default and lowest.
const MaxPriority = 9

// dueQueryPages bounds the index pages one DueRequests call reads: requests
// that just arrived share the index (PENDING, ProcessAfter = CreatedAt) and
// are filtered out, so a backlog of them must not turn the query into a scan.
const dueQueryPages = 4

// DueRequests returns up to limit due requests of one priority from the
// priority-queue index, earliest ProcessAfter first: RETRYING requests and
// PENDING ones created before settled (scheduled requests, or any whose
// stream record is late), with ProcessAfter at most now. Requests that just
// arrived are left to the stream. It reads a bounded number of index pages, so
// it may return fewer. The index is eventually consistent; claims are
// conditional.
func (s *Store) DueRequests(ctx context.Context, priority int, now, settled time.Time, limit int) ([]Request, error) {
	status := expression.Name(schema.AttrStatus)
	expr, err := expression.NewBuilder().
		WithKeyCondition(expression.Key(schema.AttrPriority).Equal(expression.Value(priority)).
			And(expression.Key(schema.AttrProcessAfter).LessThanEqual(expression.Value(now.UnixMilli())))).
		WithFilter(expression.Or(
			status.Equal(expression.Value(StatusRetrying)),
			expression.And(status.Equal(expression.Value(StatusPending)),
				expression.Name(schema.AttrCreatedAt).LessThan(expression.Value(settled.UnixMilli()))))).
		Build()
	if err != nil {
		return nil, wrap("due requests", err)
	}
	p := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:                 aws.String(s.tables.Requests),
		IndexName:                 aws.String(schema.IndexPriorityQueue),
		KeyConditionExpression:    expr.KeyCondition(),
		FilterExpression:          expr.Filter(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
		Limit:                     aws.Int32(int32(max(limit, 25))),
	})
	var due []Request
	for page := 0; page < dueQueryPages && p.HasMorePages() && len(due) < limit; page++ {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, wrap("due requests", err)
		}
		var rs []Request
		if err := attributevalue.UnmarshalListOfMaps(out.Items, &rs); err != nil {
			return nil, wrap("due requests", err)
		}
		for _, r := range rs {
			if !s.expired(r.TTL) && len(due) < limit {
				due = append(due, r)
			}
		}
	}
	return due, nil
}
