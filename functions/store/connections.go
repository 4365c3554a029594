package store

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamer-dev/streamer/functions/schema"
)

func connKey(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{schema.AttrConnectionID: &types.AttributeValueMemberS{Value: id}}
}

// PutConnection stores a new connection and counts it against its tenant, in
// one transaction. With maxPerTenant > 0, a tenant that already has that many
// connections gets ErrTenantConnectionLimit and nothing is stored; a counter
// that drifted above the true count (missed $disconnect events) is corrected
// from the tenant-connections index first. Storing the same connection id
// twice is a no-op.
func (s *Store) PutConnection(ctx context.Context, c Connection, maxPerTenant int) error {
	item, err := attributevalue.MarshalMap(c)
	if err != nil {
		return wrap("put connection", err)
	}
	cond, err := expression.NewBuilder().WithCondition(expression.AttributeNotExists(expression.Name(schema.AttrConnectionID))).Build()
	if err != nil {
		return wrap("put connection", err)
	}
	in := &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{
			TableName:                aws.String(s.tables.Connections),
			Item:                     item,
			ConditionExpression:      cond.Condition(),
			ExpressionAttributeNames: cond.Names(),
		}},
		{Update: s.counterUpdate(c.TenantID, AttrTenantConnections, 1, maxPerTenant)},
	}}
	for retried := false; ; retried = true {
		err = s.transact(ctx, in)
		reasons := cancelReasons(err)
		switch {
		case err == nil:
			return nil
		case reasonIs(reasons, 0, codeConditionFailed):
			return nil
		case reasonIs(reasons, 1, codeConditionFailed) && !retried:
			again, err := s.recount(ctx, c.TenantID, AttrTenantConnections, maxPerTenant, s.CountTenantConnections)
			if err != nil {
				return wrap("put connection", err)
			}
			if !again {
				return ErrTenantConnectionLimit
			}
		case reasonIs(reasons, 1, codeConditionFailed):
			return ErrTenantConnectionLimit
		default:
			return wrap("put connection", err)
		}
	}
}

// GetConnection returns a connection; ErrNotFound when it does not exist or has
// expired.
func (s *Store) GetConnection(ctx context.Context, id string) (Connection, error) {
	var c Connection
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.tables.Connections),
		Key:            connKey(id),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return c, wrap("get connection", err)
	}
	if len(out.Item) == 0 {
		return c, ErrNotFound
	}
	if err := attributevalue.UnmarshalMap(out.Item, &c); err != nil {
		return c, wrap("get connection", err)
	}
	if s.expired(c.TTL) {
		return c, ErrNotFound
	}
	return c, nil
}

// TouchConnection records a heartbeat: LastPing = now and TTL = now + ttl.
// ErrNotFound when the connection does not exist.
func (s *Store) TouchConnection(ctx context.Context, id string, ttl time.Duration) error {
	now := s.now()
	expr, err := expression.NewBuilder().
		WithUpdate(expression.
			Set(expression.Name("LastPing"), expression.Value(now.UnixMilli())).
			Set(expression.Name(schema.AttrTTL), expression.Value(now.Add(ttl).Unix()))).
		WithCondition(expression.AttributeExists(expression.Name(schema.AttrConnectionID))).
		Build()
	if err != nil {
		return wrap("touch connection", err)
	}
	_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.tables.Connections),
		Key:                       connKey(id),
		UpdateExpression:          expr.Update(),
		ConditionExpression:       expr.Condition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	})
	switch {
	case conditionFailed(err):
		return ErrNotFound
	case err != nil:
		return wrap("touch connection", err)
	}
	return nil
}

// RemoveConnection deletes a connection, releases its slot in the tenant's
// connection count and deletes its subscriptions. It returns the removed
// connection, or a zero Connection when it was already gone; it is idempotent:
// removing a connection that is gone still deletes leftover subscriptions.
func (s *Store) RemoveConnection(ctx context.Context, id string) (Connection, error) {
	var c Connection
	out, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:    aws.String(s.tables.Connections),
		Key:          connKey(id),
		ReturnValues: types.ReturnValueAllOld,
	})
	if err != nil {
		return c, wrap("remove connection", err)
	}
	if err := attributevalue.UnmarshalMap(out.Attributes, &c); err != nil {
		return c, wrap("remove connection", err)
	}
	if c.TenantID != "" {
		if _, err := s.db.UpdateItem(ctx, updateInput(s.counterUpdate(c.TenantID, AttrTenantConnections, -1, 0))); err != nil {
			return c, wrap("remove connection: release tenant slot", err)
		}
	}
	if err := s.DeleteConnectionSubscriptions(ctx, id); err != nil {
		return c, wrap("remove connection", err)
	}
	return c, nil
}

// CountTenantConnections counts tenantID's unexpired connections from the
// tenant-connections index (eventually consistent).
func (s *Store) CountTenantConnections(ctx context.Context, tenantID string) (int, error) {
	return s.countIndex(ctx, s.tables.Connections, schema.IndexTenantConnections, schema.AttrTenantID, tenantID,
		expression.Name(schema.AttrTTL).GreaterThan(expression.Value(s.now().Unix())))
}

// countIndex counts the items of one index partition that match filter.
func (s *Store) countIndex(ctx context.Context, table, index, keyAttr, key string, filter expression.ConditionBuilder) (int, error) {
	expr, err := expression.NewBuilder().
		WithKeyCondition(expression.Key(keyAttr).Equal(expression.Value(key))).
		WithFilter(filter).Build()
	if err != nil {
		return 0, wrap("count "+index, err)
	}
	p := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:                 aws.String(table),
		IndexName:                 aws.String(index),
		KeyConditionExpression:    expr.KeyCondition(),
		FilterExpression:          expr.Filter(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
		Select:                    types.SelectCount,
	})
	n := 0
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return 0, wrap("count "+index, err)
		}
		n += int(out.Count)
	}
	return n, nil
}

func updateInput(u *types.Update) *dynamodb.UpdateItemInput {
	return &dynamodb.UpdateItemInput{
		TableName:                 u.TableName,
		Key:                       u.Key,
		UpdateExpression:          u.UpdateExpression,
		ConditionExpression:       u.ConditionExpression,
		ExpressionAttributeNames:  u.ExpressionAttributeNames,
		ExpressionAttributeValues: u.ExpressionAttributeValues,
	}
}
