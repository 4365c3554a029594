package ddbtest

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/streamer-dev/streamer/functions/schema"
)

func TestTablesMatchSchema(t *testing.T) {
	t.Parallel()
	env := Tables(t)
	tests := []struct {
		give string
		want schema.Table
	}{
		{env.Tables.Connections, schema.Connections},
		{env.Tables.Requests, schema.Requests},
		{env.Tables.Subscriptions, schema.Subscriptions},
	}
	for _, tt := range tests {
		out, err := env.Client.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String(tt.give)})
		if err != nil {
			t.Fatalf("describe %s: %v", tt.give, err)
		}
		got := map[string]bool{}
		for _, ix := range out.Table.GlobalSecondaryIndexes {
			got[*ix.IndexName] = true
		}
		for _, ix := range tt.want.Indexes {
			if !got[ix.Name] {
				t.Errorf("%s: index %s missing; got %v", tt.give, ix.Name, got)
			}
		}
		hasStream := out.Table.StreamSpecification != nil && aws.ToBool(out.Table.StreamSpecification.StreamEnabled)
		if hasStream != (tt.want.Stream != schema.NoStream) {
			t.Errorf("%s: stream enabled = %v, want %v", tt.give, hasStream, tt.want.Stream != schema.NoStream)
		}
		ttl, err := env.Client.DescribeTimeToLive(context.Background(), &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(tt.give)})
		if err != nil {
			t.Fatalf("describe ttl %s: %v", tt.give, err)
		}
		if got := aws.ToString(ttl.TimeToLiveDescription.AttributeName); got != tt.want.TTLAttribute {
			t.Errorf("%s: ttl attribute = %q, want %q", tt.give, got, tt.want.TTLAttribute)
		}
	}
}
