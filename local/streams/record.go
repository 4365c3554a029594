// Package streams plays Lambda's DynamoDB Streams event source mapping against
// DynamoDB Local's real Streams API: it reads every shard of a table's stream
// (following shard rollover), converts records to the Lambda event shape,
// filters them with the construct's filter, batches them and invokes the
// processor, honouring partial batch failures.
package streams

import (
	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

// ToEventRecord converts a record returned by GetRecords to the record Lambda
// hands a function (events.DynamoDBEventRecord). EventSourceArn is left empty:
// the caller knows the stream ARN.
func ToEventRecord(rec types.Record) events.DynamoDBEventRecord {
	out := events.DynamoDBEventRecord{
		AWSRegion:    aws.ToString(rec.AwsRegion),
		EventID:      aws.ToString(rec.EventID),
		EventName:    string(rec.EventName),
		EventSource:  aws.ToString(rec.EventSource),
		EventVersion: aws.ToString(rec.EventVersion),
	}
	if rec.UserIdentity != nil {
		out.UserIdentity = &events.DynamoDBUserIdentity{
			Type:        aws.ToString(rec.UserIdentity.Type),
			PrincipalID: aws.ToString(rec.UserIdentity.PrincipalId),
		}
	}
	if sr := rec.Dynamodb; sr != nil {
		out.Change = events.DynamoDBStreamRecord{
			Keys:           toImage(sr.Keys),
			NewImage:       toImage(sr.NewImage),
			OldImage:       toImage(sr.OldImage),
			SequenceNumber: aws.ToString(sr.SequenceNumber),
			SizeBytes:      aws.ToInt64(sr.SizeBytes),
			StreamViewType: string(sr.StreamViewType),
		}
		if sr.ApproximateCreationDateTime != nil {
			out.Change.ApproximateCreationDateTime = events.SecondsEpochTime{Time: *sr.ApproximateCreationDateTime}
		}
	}
	return out
}

// toImage converts an item image; nil stays nil as in Lambda's JSON.
func toImage(item map[string]types.AttributeValue) map[string]events.DynamoDBAttributeValue {
	if item == nil {
		return nil
	}
	out := make(map[string]events.DynamoDBAttributeValue, len(item))
	for k, v := range item {
		out[k] = toAttribute(v)
	}
	return out
}

// toAttribute converts one Streams API attribute value to Lambda's type.
func toAttribute(v types.AttributeValue) events.DynamoDBAttributeValue {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return events.NewStringAttribute(v.Value)
	case *types.AttributeValueMemberN:
		return events.NewNumberAttribute(v.Value)
	case *types.AttributeValueMemberB:
		return events.NewBinaryAttribute(v.Value)
	case *types.AttributeValueMemberBOOL:
		return events.NewBooleanAttribute(v.Value)
	case *types.AttributeValueMemberSS:
		return events.NewStringSetAttribute(v.Value)
	case *types.AttributeValueMemberNS:
		return events.NewNumberSetAttribute(v.Value)
	case *types.AttributeValueMemberBS:
		return events.NewBinarySetAttribute(v.Value)
	case *types.AttributeValueMemberL:
		list := make([]events.DynamoDBAttributeValue, len(v.Value))
		for i, e := range v.Value {
			list[i] = toAttribute(e)
		}
		return events.NewListAttribute(list)
	case *types.AttributeValueMemberM:
		return events.NewMapAttribute(toImage(v.Value))
	}
	return events.NewNullAttribute()
}
