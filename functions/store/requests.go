package store

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamer-dev/streamer/functions/protocol"
	"github.com/streamer-dev/streamer/functions/schema"
)

func reqKey(key string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{schema.AttrRequestID: &types.AttributeValueMemberS{Value: key}}
}

// CreateRequest stores a new PENDING request and counts it against its
// tenant's in-flight cap, in one transaction. The submitting connection
// (r.ConnectionID) follows the request from then on (Request.Submitter).
// r.RequestID must be RequestKey(r.TenantID, r.ID).
//
// When the tenant already has a request with this id, nothing is written and
// CreateRequest returns that request with created = false. With maxInflight >
// 0, a tenant at its cap gets ErrTenantInflightLimit (after correcting a
// counter that drifted above the true count).
//
// extra items join the transaction (a rate-limit Reservation's Tx); when one
// of their conditions fails nothing is written and the error is ErrStale.
func (s *Store) CreateRequest(ctx context.Context, r Request, maxInflight int, extra ...types.TransactWriteItem) (existing Request, created bool, err error) {
	if r.RequestID != RequestKey(r.TenantID, r.ID) {
		return r, false, fmt.Errorf("create request: key %q is not RequestKey(%q, %q)", r.RequestID, r.TenantID, r.ID)
	}
	item, err := attributevalue.MarshalMap(r)
	if err != nil {
		return r, false, wrap("create request", err)
	}
	cond, err := expression.NewBuilder().WithCondition(expression.AttributeNotExists(expression.Name(schema.AttrRequestID))).Build()
	if err != nil {
		return r, false, wrap("create request", err)
	}
	in := &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{
			TableName:                           aws.String(s.tables.Requests),
			Item:                                item,
			ConditionExpression:                 cond.Condition(),
			ExpressionAttributeNames:            cond.Names(),
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}},
		{Update: s.counterUpdate(r.TenantID, AttrTenantInflight, 1, maxInflight)},
	}}
	in.TransactItems = append(in.TransactItems, extra...)
	for retried := false; ; retried = true {
		err = s.transact(ctx, in)
		reasons := cancelReasons(err)
		switch {
		case err == nil:
			return r, true, nil
		case extraFailed(reasons, 2):
			return r, false, ErrStale
		case reasonIs(reasons, 0, codeConditionFailed):
			if old := reasons[0].Item; len(old) > 0 {
				var prev Request
				if err := attributevalue.UnmarshalMap(old, &prev); err != nil {
					return r, false, wrap("create request: existing", err)
				}
				return prev, false, nil
			}
			prev, err := s.GetRequest(ctx, r.TenantID, r.ID)
			if err != nil {
				return r, false, wrap("create request: existing", err)
			}
			return prev, false, nil
		case reasonIs(reasons, 1, codeConditionFailed) && !retried:
			again, err := s.recount(ctx, r.TenantID, AttrTenantInflight, maxInflight, s.CountTenantInflight)
			if err != nil {
				return r, false, wrap("create request", err)
			}
			if !again {
				return r, false, ErrTenantInflightLimit
			}
		case reasonIs(reasons, 1, codeConditionFailed):
			return r, false, ErrTenantInflightLimit
		default:
			return r, false, wrap("create request", err)
		}
	}
}

// GetRequest returns tenantID's request with client-visible id (a strongly
// consistent read). ErrNotFound when there is none, or it expired.
func (s *Store) GetRequest(ctx context.Context, tenantID, id string) (Request, error) {
	return s.RequestByKey(ctx, RequestKey(tenantID, id))
}

// CancelledMessage is the error message of a cancelled request.
const CancelledMessage = "request cancelled by the client"

// CancelRequest moves tenantID's request id from PENDING, RETRYING or
// PROCESSING to CANCELLED and releases its in-flight slot, in one transaction.
// A running handler learns of it when its next lease renewal or write fails on
// the status condition. ErrNotFound when there is no such request; ErrFinal,
// with the request, when it is already final.
func (s *Store) CancelRequest(ctx context.Context, tenantID, id string) (Request, error) {
	now := s.now().UnixMilli()
	info, err := attributevalue.Marshal(ErrorInfo{Code: protocol.CodeCancelled, Message: CancelledMessage})
	if err != nil {
		return Request{}, wrap("cancel request", err)
	}
	status := expression.Name(schema.AttrStatus)
	expr, err := expression.NewBuilder().
		WithUpdate(expression.
			Set(status, expression.Value(StatusCancelled)).
			Set(expression.Name("ProcessedAt"), expression.Value(now)).
			Set(expression.Name("Error"), expression.Value(info)).
			Remove(expression.Name(schema.AttrProcessAfter)).
			Remove(expression.Name("LeaseOwner")).
			Remove(expression.Name("LeaseExpiresAt"))).
		WithCondition(expression.Or(
			status.Equal(expression.Value(StatusPending)),
			status.Equal(expression.Value(StatusRetrying)),
			status.Equal(expression.Value(StatusProcessing)),
		)).Build()
	if err != nil {
		return Request{}, wrap("cancel request", err)
	}
	err = s.transact(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Update: &types.Update{
			TableName:                 aws.String(s.tables.Requests),
			Key:                       reqKey(RequestKey(tenantID, id)),
			UpdateExpression:          expr.Update(),
			ConditionExpression:       expr.Condition(),
			ExpressionAttributeNames:  expr.Names(),
			ExpressionAttributeValues: expr.Values(),
		}},
		s.ReleaseInflightTx(tenantID),
	}})
	if err != nil && !reasonIs(cancelReasons(err), 0, codeConditionFailed) {
		return Request{}, wrap("cancel request", err)
	}
	r, getErr := s.GetRequest(ctx, tenantID, id)
	switch {
	case getErr != nil:
		return r, getErr
	case err != nil:
		return r, ErrFinal
	}
	return r, nil
}

// CountTenantInflight counts tenantID's requests that are not final, from the
// tenant-requests index (eventually consistent; used only to correct drift).
func (s *Store) CountTenantInflight(ctx context.Context, tenantID string) (int, error) {
	status := expression.Name(schema.AttrStatus)
	return s.countIndex(ctx, s.tables.Requests, schema.IndexTenantRequests, schema.AttrTenantID, tenantID, expression.And(
		status.NotEqual(expression.Value(StatusCompleted)),
		status.NotEqual(expression.Value(StatusFailed)),
		status.NotEqual(expression.Value(StatusCancelled)),
	))
}
