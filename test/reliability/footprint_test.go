package reliability

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamer-dev/streamer/functions/schema"
	"github.com/streamer-dev/streamer/local"
)

// footprint is what a tenant has stored, read straight from the tables.
type footprint struct {
	// Connections are the tenant's connection items (tenant-connections index).
	Connections []string
	// Requests counts the tenant's request items (tenant-requests index).
	Requests int
	// Subscriptions counts the subscriptions of the tenant's connections
	// (connection-subs index).
	Subscriptions int
	// ConnCounter and Inflight are the tenant's counters.
	ConnCounter, Inflight int
}

// footprintOf reads tenant's footprint on rt.
func footprintOf(ctx context.Context, rt *local.Runtime, tenant string) (footprint, error) {
	var fp footprint
	db, tables := rt.DynamoDB(), rt.Tables()
	conns, err := queryAll(ctx, db, tables.Connections, schema.IndexTenantConnections, schema.AttrTenantID, tenant)
	if err != nil {
		return fp, fmt.Errorf("connections of %s: %w", tenant, err)
	}
	for _, item := range conns {
		id, _ := item[schema.AttrConnectionID].(*types.AttributeValueMemberS)
		if id == nil {
			return fp, fmt.Errorf("connection item without %s", schema.AttrConnectionID)
		}
		fp.Connections = append(fp.Connections, id.Value)
		subs, err := queryAll(ctx, db, tables.Subscriptions, schema.IndexConnectionSubs, schema.AttrConnectionID, id.Value)
		if err != nil {
			return fp, fmt.Errorf("subscriptions of %s: %w", id.Value, err)
		}
		fp.Subscriptions += len(subs)
	}
	reqs, err := requestsOf(ctx, db, tables.Requests, tenant)
	if err != nil {
		return fp, fmt.Errorf("requests of %s: %w", tenant, err)
	}
	fp.Requests = len(reqs)
	if fp.ConnCounter, fp.Inflight, err = rt.Store().TenantCounters(ctx, tenant); err != nil {
		return fp, err
	}
	return fp, nil
}

// queryAll returns every item of index whose key attr equals value.
func queryAll(ctx context.Context, db *dynamodb.Client, table, index, attr, value string) ([]map[string]types.AttributeValue, error) {
	p := dynamodb.NewQueryPaginator(db, &dynamodb.QueryInput{
		TableName:                 aws.String(table),
		IndexName:                 aws.String(index),
		KeyConditionExpression:    aws.String("#k = :v"),
		ExpressionAttributeNames:  map[string]string{"#k": attr},
		ExpressionAttributeValues: map[string]types.AttributeValue{":v": &types.AttributeValueMemberS{Value: value}},
	})
	var out []map[string]types.AttributeValue
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Items...)
	}
	return out, nil
}
