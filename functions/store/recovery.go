package store

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/streamer-dev/streamer/functions/schema"
)

// RequestsInStatus reads every request in status from the status-time index
// (oldest first; eventually consistent). It is for recovery, not the hot path:
// the local runtime re-arms the wake-ups of the open requests it finds.
func (s *Store) RequestsInStatus(ctx context.Context, status Status) ([]Request, error) {
	expr, err := expression.NewBuilder().
		WithKeyCondition(expression.Key(schema.AttrStatus).Equal(expression.Value(status))).Build()
	if err != nil {
		return nil, wrap("query "+string(status)+" requests", err)
	}
	p := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:                 aws.String(s.tables.Requests),
		IndexName:                 aws.String(schema.IndexStatusTime),
		KeyConditionExpression:    expr.KeyCondition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	})
	var rs []Request
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, wrap("query "+string(status)+" requests", err)
		}
		var page []Request
		if err := attributevalue.UnmarshalListOfMaps(out.Items, &page); err != nil {
			return nil, wrap("query "+string(status)+" requests", err)
		}
		for _, r := range page {
			if !s.expired(r.TTL) {
				rs = append(rs, r)
			}
		}
	}
	return rs, nil
}
