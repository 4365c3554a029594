package store

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamer-dev/streamer/functions/schema"
)

// Wants reports whether the subscription receives events of eventType: every
// type when EventTypes is empty.
func (sub Subscription) Wants(eventType string) bool {
	return len(sub.EventTypes) == 0 || slices.Contains(sub.EventTypes, eventType)
}

func subKey(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{schema.AttrSubscriptionID: &types.AttributeValueMemberS{Value: id}}
}

// PutSubscription subscribes a connection to a request (sub.RequestID is the
// request's table key). Subscribing again replaces the event types; a
// subscription of the request's submitter takes the place of its implicit one.
func (s *Store) PutSubscription(ctx context.Context, sub Subscription) error {
	sub.SubscriptionID = SubscriptionKey(sub.ConnectionID, sub.RequestID)
	item, err := attributevalue.MarshalMap(sub)
	if err != nil {
		return wrap("put subscription", err)
	}
	if _, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.tables.Subscriptions), Item: item}); err != nil {
		return wrap("put subscription", err)
	}
	return nil
}

// UnsubscribeSubmitter ends the implicit subscription of the request's
// submitter when connectionID is that submitter; other connections are left
// to DeleteSubscription. It reports whether connectionID was the submitter.
func (s *Store) UnsubscribeSubmitter(ctx context.Context, requestKey, connectionID string) (bool, error) {
	expr, err := expression.NewBuilder().
		WithUpdate(expression.Set(expression.Name("SubmitterUnsubscribed"), expression.Value(true))).
		WithCondition(expression.Name(schema.AttrConnectionID).Equal(expression.Value(connectionID))).
		Build()
	if err != nil {
		return false, wrap("unsubscribe submitter", err)
	}
	_, err = s.db.UpdateItem(ctx, updateInput(&types.Update{
		TableName:                 aws.String(s.tables.Requests),
		Key:                       reqKey(requestKey),
		UpdateExpression:          expr.Update(),
		ConditionExpression:       expr.Condition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	}))
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		return false, nil
	case err != nil:
		return false, wrap("unsubscribe submitter", err)
	}
	return true, nil
}

// DeleteSubscription removes connectionID's subscription to the request with
// table key requestKey. It reports whether there was one.
func (s *Store) DeleteSubscription(ctx context.Context, connectionID, requestKey string) (bool, error) {
	out, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:    aws.String(s.tables.Subscriptions),
		Key:          subKey(SubscriptionKey(connectionID, requestKey)),
		ReturnValues: types.ReturnValueAllOld,
	})
	if err != nil {
		return false, wrap("delete subscription", err)
	}
	return len(out.Attributes) > 0, nil
}

// RequestSubscriptions returns the unexpired subscriptions to the request with
// table key requestKey, from the request-subs index.
func (s *Store) RequestSubscriptions(ctx context.Context, requestKey string) ([]Subscription, error) {
	subs, err := s.querySubscriptions(ctx, schema.IndexRequestSubs, schema.AttrRequestID, requestKey,
		schema.AttrSubscriptionID, schema.AttrConnectionID, schema.AttrRequestID, schema.AttrTenantID, "EventTypes", schema.AttrTTL)
	if err != nil {
		return nil, wrap("request subscriptions", err)
	}
	return subs, nil
}

// DeleteConnectionSubscriptions deletes every subscription of a connection.
func (s *Store) DeleteConnectionSubscriptions(ctx context.Context, connectionID string) error {
	subs, err := s.querySubscriptions(ctx, schema.IndexConnectionSubs, schema.AttrConnectionID, connectionID, schema.AttrSubscriptionID)
	if err != nil {
		return wrap("delete connection subscriptions", err)
	}
	var reqs []types.WriteRequest
	for _, sub := range subs {
		reqs = append(reqs, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: subKey(sub.SubscriptionID)}})
	}
	if err := s.batchWrite(ctx, s.tables.Subscriptions, reqs); err != nil {
		return wrap("delete connection subscriptions", err)
	}
	return nil
}

// querySubscriptions reads the subscriptions of one index partition, only the
// attributes named by fields.
func (s *Store) querySubscriptions(ctx context.Context, index, keyAttr, key string, fields ...string) ([]Subscription, error) {
	proj := expression.NamesList(expression.Name(fields[0]))
	for _, f := range fields[1:] {
		proj = proj.AddNames(expression.Name(f))
	}
	expr, err := expression.NewBuilder().
		WithKeyCondition(expression.Key(keyAttr).Equal(expression.Value(key))).
		WithProjection(proj).Build()
	if err != nil {
		return nil, err
	}
	p := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:                 aws.String(s.tables.Subscriptions),
		IndexName:                 aws.String(index),
		KeyConditionExpression:    expr.KeyCondition(),
		ProjectionExpression:      expr.Projection(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	})
	var subs []Subscription
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		var page []Subscription
		if err := attributevalue.UnmarshalListOfMaps(out.Items, &page); err != nil {
			return nil, err
		}
		for _, sub := range page {
			if !s.expired(sub.TTL) {
				subs = append(subs, sub)
			}
		}
	}
	return subs, nil
}

// batchWrite writes reqs in batches of 25, resending unprocessed items with
// backoff.
func (s *Store) batchWrite(ctx context.Context, table string, reqs []types.WriteRequest) error {
	for len(reqs) > 0 {
		n := min(25, len(reqs))
		pending := map[string][]types.WriteRequest{table: reqs[:n]}
		reqs = reqs[n:]
		for attempt := 0; len(pending[table]) > 0; attempt++ {
			if attempt > 0 {
				if attempt > 8 {
					return wrap("batch write", context.DeadlineExceeded)
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Duration(10<<attempt) * time.Millisecond):
				}
			}
			out, err := s.db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
			if err != nil {
				return wrap("batch write", err)
			}
			pending = out.UnprocessedItems
		}
	}
	return nil
}
