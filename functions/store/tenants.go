package store

import (
	"context"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamer-dev/streamer/functions/schema"
)

func (s *Store) counterKey(tenantID string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{schema.AttrConnectionID: &types.AttributeValueMemberS{Value: TenantCounterKey(tenantID)}}
}

// counterUpdate adds delta to the tenant counter attr. With max > 0 the update
// is conditional on the counter being below max before it.
func (s *Store) counterUpdate(tenantID, attr string, delta, max int) *types.Update {
	b := expression.NewBuilder().WithUpdate(expression.Add(expression.Name(attr), expression.Value(delta)))
	if max > 0 {
		b = b.WithCondition(expression.Or(
			expression.AttributeNotExists(expression.Name(attr)),
			expression.Name(attr).LessThan(expression.Value(max)),
		))
	}
	expr, err := b.Build()
	if err != nil {
		panic(fmt.Sprintf("store: counter expression: %v", err)) // static expression: a bug
	}
	return &types.Update{
		TableName:                 aws.String(s.tables.Connections),
		Key:                       s.counterKey(tenantID),
		UpdateExpression:          expr.Update(),
		ConditionExpression:       expr.Condition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	}
}

// ReleaseInflightTx is the transaction item that decrements tenantID's
// in-flight request counter. The processor adds it to the transaction of a
// request's final transition (COMPLETED or FAILED), so the counter changes
// exactly when the request becomes final.
func (s *Store) ReleaseInflightTx(tenantID string) types.TransactWriteItem {
	return types.TransactWriteItem{Update: s.counterUpdate(tenantID, AttrTenantInflight, -1, 0)}
}

// TenantCounters returns tenantID's open connections and in-flight requests as
// counted by its counter item.
func (s *Store) TenantCounters(ctx context.Context, tenantID string) (connections, inflight int, err error) {
	proj, err := expression.NewBuilder().WithProjection(expression.NamesList(
		expression.Name(AttrTenantConnections), expression.Name(AttrTenantInflight))).Build()
	if err != nil {
		return 0, 0, wrap("get tenant counters", err)
	}
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:                aws.String(s.tables.Connections),
		Key:                      s.counterKey(tenantID),
		ConsistentRead:           aws.Bool(true),
		ProjectionExpression:     proj.Projection(),
		ExpressionAttributeNames: proj.Names(),
	})
	if err != nil {
		return 0, 0, wrap("get tenant counters", err)
	}
	return numberAttr(out.Item, AttrTenantConnections), numberAttr(out.Item, AttrTenantInflight), nil
}

func numberAttr(item map[string]types.AttributeValue, name string) int {
	n, ok := item[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0
	}
	v, _ := strconv.Atoi(n.Value)
	return v
}

// resetCounter sets a tenant counter to value if it still holds old, correcting
// drift (a missed $disconnect, an expired request). It reports whether the
// counter was reset.
func (s *Store) resetCounter(ctx context.Context, tenantID, attr string, old, value int) (bool, error) {
	cond := expression.Name(attr).Equal(expression.Value(old))
	if old == 0 {
		cond = expression.Or(expression.AttributeNotExists(expression.Name(attr)), cond)
	}
	expr, err := expression.NewBuilder().
		WithUpdate(expression.Set(expression.Name(attr), expression.Value(value))).
		WithCondition(cond).Build()
	if err != nil {
		return false, wrap("reset tenant counter", err)
	}
	_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.tables.Connections),
		Key:                       s.counterKey(tenantID),
		UpdateExpression:          expr.Update(),
		ConditionExpression:       expr.Condition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	})
	switch {
	case conditionFailed(err):
		return false, nil
	case err != nil:
		return false, wrap("reset tenant counter", err)
	}
	return true, nil
}

// recount corrects tenantID's counter attr when it is at or above max but the
// true count, from count, is below. It reports whether a retry may succeed.
func (s *Store) recount(ctx context.Context, tenantID, attr string, max int, count func(context.Context, string) (int, error)) (bool, error) {
	conns, inflight, err := s.TenantCounters(ctx, tenantID)
	if err != nil {
		return false, err
	}
	old := conns
	if attr == AttrTenantInflight {
		old = inflight
	}
	actual, err := count(ctx, tenantID)
	if err != nil {
		return false, err
	}
	if actual >= max || actual == old {
		return false, nil
	}
	return s.resetCounter(ctx, tenantID, attr, old, actual)
}
