// Package schema is the single source of truth for Streamer's DynamoDB tables:
// their keys, global secondary indexes, TTL attribute and stream view.
//
// The CDK construct provisions the tables from these definitions and the local
// runtime creates them in DynamoDB Local from the same definitions, so the two
// cannot drift. Attribute and index names follow the architecture document.
package schema

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// AttributeType is a DynamoDB scalar key type.
type AttributeType string

// Key attribute types.
const (
	String AttributeType = "S"
	Number AttributeType = "N"
)

// Attribute is a key attribute: its name and scalar type.
type Attribute struct {
	Name string
	Type AttributeType
}

// Index is a global secondary index projecting all attributes.
type Index struct {
	Name         string
	PartitionKey Attribute
	// SortKey is nil for an index with a partition key only.
	SortKey *Attribute
}

// StreamView is the view type of a table's DynamoDB stream.
type StreamView string

// Stream views used by Streamer.
const (
	NoStream        StreamView = ""
	NewAndOldImages StreamView = "NEW_AND_OLD_IMAGES"
)

// Table describes one DynamoDB table.
type Table struct {
	// ID is the stable logical name of the table ("Connections"); the construct
	// uses it as the construct ID, so it is part of the public contract.
	ID           string
	PartitionKey Attribute
	Indexes      []Index
	// TTLAttribute holds the expiry time in epoch seconds.
	TTLAttribute string
	Stream       StreamView
}

// Attribute names shared by the tables and the storage layer.
const (
	AttrConnectionID   = "ConnectionID"
	AttrUserID         = "UserID"
	AttrTenantID       = "TenantID"
	AttrRequestID      = "RequestID"
	AttrStatus         = "Status"
	AttrCreatedAt      = "CreatedAt"
	AttrPriority       = "Priority"
	AttrProcessAfter   = "ProcessAfter"
	AttrSubscriptionID = "SubscriptionID"
	AttrTTL            = "TTL"
)

// Index names, exactly as in the architecture document.
const (
	IndexUserConnections   = "user-connections"
	IndexTenantConnections = "tenant-connections"
	IndexConnectionReqs    = "connection-requests"
	IndexTenantRequests    = "tenant-requests"
	IndexStatusTime        = "status-time"
	IndexPriorityQueue     = "priority-queue"
	IndexConnectionSubs    = "connection-subs"
	IndexRequestSubs       = "request-subs"
)

func s(name string) Attribute { return Attribute{Name: name, Type: String} }
func n(name string) Attribute { return Attribute{Name: name, Type: Number} }

// Connections holds one item per open WebSocket connection.
var Connections = Table{
	ID:           "Connections",
	PartitionKey: s(AttrConnectionID),
	Indexes: []Index{
		{Name: IndexUserConnections, PartitionKey: s(AttrUserID)},
		{Name: IndexTenantConnections, PartitionKey: s(AttrTenantID)},
	},
	TTLAttribute: AttrTTL,
}

// Requests holds one item per async request. Its stream triggers the processor.
// CreatedAt and ProcessAfter are epoch milliseconds, so the indexes sort by time.
var Requests = Table{
	ID:           "Requests",
	PartitionKey: s(AttrRequestID),
	Indexes: []Index{
		{Name: IndexConnectionReqs, PartitionKey: s(AttrConnectionID)},
		{Name: IndexTenantRequests, PartitionKey: s(AttrTenantID)},
		{Name: IndexStatusTime, PartitionKey: s(AttrStatus), SortKey: ptr(n(AttrCreatedAt))},
		{Name: IndexPriorityQueue, PartitionKey: n(AttrPriority), SortKey: ptr(n(AttrProcessAfter))},
	},
	TTLAttribute: AttrTTL,
	Stream:       NewAndOldImages,
}

// Subscriptions links connections to the requests whose events they receive.
var Subscriptions = Table{
	ID:           "Subscriptions",
	PartitionKey: s(AttrSubscriptionID),
	Indexes: []Index{
		{Name: IndexConnectionSubs, PartitionKey: s(AttrConnectionID)},
		{Name: IndexRequestSubs, PartitionKey: s(AttrRequestID)},
	},
	TTLAttribute: AttrTTL,
}

// Tables returns the three tables in a stable order.
func Tables() []Table { return []Table{Connections, Requests, Subscriptions} }

func ptr[T any](v T) *T { return &v }

// KeyAttributes returns every attribute used as a key by the table or one of its
// indexes, each once, in order of first use.
func (t Table) KeyAttributes() []Attribute {
	seen := map[string]bool{}
	var out []Attribute
	add := func(a Attribute) {
		if !seen[a.Name] {
			seen[a.Name] = true
			out = append(out, a)
		}
	}
	add(t.PartitionKey)
	for _, ix := range t.Indexes {
		add(ix.PartitionKey)
		if ix.SortKey != nil {
			add(*ix.SortKey)
		}
	}
	return out
}

// CreateTableInput returns the input that creates the table under name, with
// on-demand billing, every index and the stream, as the construct deploys it.
// TTL is set separately with UpdateTimeToLiveInput.
func (t Table) CreateTableInput(name string) *dynamodb.CreateTableInput {
	in := &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(t.PartitionKey.Name), KeyType: types.KeyTypeHash},
		},
	}
	for _, a := range t.KeyAttributes() {
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{
			AttributeName: aws.String(a.Name),
			AttributeType: types.ScalarAttributeType(a.Type),
		})
	}
	for _, ix := range t.Indexes {
		ks := []types.KeySchemaElement{{AttributeName: aws.String(ix.PartitionKey.Name), KeyType: types.KeyTypeHash}}
		if ix.SortKey != nil {
			ks = append(ks, types.KeySchemaElement{AttributeName: aws.String(ix.SortKey.Name), KeyType: types.KeyTypeRange})
		}
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, types.GlobalSecondaryIndex{
			IndexName:  aws.String(ix.Name),
			KeySchema:  ks,
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
		})
	}
	if t.Stream != NoStream {
		in.StreamSpecification = &types.StreamSpecification{
			StreamEnabled:  aws.Bool(true),
			StreamViewType: types.StreamViewType(t.Stream),
		}
	}
	return in
}

// UpdateTimeToLiveInput returns the input that enables TTL on the table under name.
func (t Table) UpdateTimeToLiveInput(name string) *dynamodb.UpdateTimeToLiveInput {
	return &dynamodb.UpdateTimeToLiveInput{
		TableName: aws.String(name),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(t.TTLAttribute),
			Enabled:       aws.Bool(true),
		},
	}
}
