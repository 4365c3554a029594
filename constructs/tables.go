package streamer

import (
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/streamer-dev/streamer/functions/schema"
)

func attribute(a schema.Attribute) *awsdynamodb.Attribute {
	typ := awsdynamodb.AttributeType_STRING
	if a.Type == schema.Number {
		typ = awsdynamodb.AttributeType_NUMBER
	}
	return &awsdynamodb.Attribute{Name: jsii.String(a.Name), Type: typ}
}

// newTable creates one table from its schema: on-demand, point-in-time
// recovery, TTL, encrypted, every GSI projecting all attributes, and the
// stream when the schema asks for one. The construct ID is the schema ID and
// no physical name is set, so deployments never collide.
func newTable(scope constructs.Construct, t schema.Table, props *StreamerConstructProps, s settings) awsdynamodb.Table {
	tp := &awsdynamodb.TableProps{
		PartitionKey: attribute(t.PartitionKey),
		BillingMode:  awsdynamodb.BillingMode_PAY_PER_REQUEST,
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		TimeToLiveAttribute: jsii.String(t.TTLAttribute),
		RemovalPolicy:       s.removal,
		DeletionProtection:  jsii.Bool(s.deletionProtection),
		Encryption:          awsdynamodb.TableEncryption_AWS_MANAGED,
	}
	if props.EncryptionKey != nil {
		tp.Encryption = awsdynamodb.TableEncryption_CUSTOMER_MANAGED
		tp.EncryptionKey = props.EncryptionKey
	}
	if t.Stream == schema.NewAndOldImages {
		tp.Stream = awsdynamodb.StreamViewType_NEW_AND_OLD_IMAGES
	}
	table := awsdynamodb.NewTable(scope, jsii.String(t.ID), tp)
	for _, ix := range t.Indexes {
		gsi := &awsdynamodb.GlobalSecondaryIndexProps{
			IndexName:      jsii.String(ix.Name),
			PartitionKey:   attribute(ix.PartitionKey),
			ProjectionType: awsdynamodb.ProjectionType_ALL,
		}
		if ix.SortKey != nil {
			gsi.SortKey = attribute(*ix.SortKey)
		}
		table.AddGlobalSecondaryIndex(gsi)
	}
	return table
}
