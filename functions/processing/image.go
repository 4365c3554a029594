package processing

import (
	"fmt"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamer-dev/streamer/functions/store"
)

// requestFromImage converts a stream record's image to a Request with the
// SDK's attribute value conversion (the same the store uses), so field names
// cannot drift.
func requestFromImage(image map[string]events.DynamoDBAttributeValue) (store.Request, error) {
	var r store.Request
	item := make(map[string]types.AttributeValue, len(image))
	for k, v := range image {
		av, err := attributeValue(v)
		if err != nil {
			return r, fmt.Errorf("stream image attribute %s: %w", k, err)
		}
		item[k] = av
	}
	if err := attributevalue.UnmarshalMap(item, &r); err != nil {
		return r, fmt.Errorf("stream image: %w", err)
	}
	return r, nil
}

// attributeValue converts one Lambda stream attribute value to the SDK's type.
func attributeValue(v events.DynamoDBAttributeValue) (types.AttributeValue, error) {
	switch v.DataType() {
	case events.DataTypeString:
		return &types.AttributeValueMemberS{Value: v.String()}, nil
	case events.DataTypeNumber:
		return &types.AttributeValueMemberN{Value: v.Number()}, nil
	case events.DataTypeBinary:
		return &types.AttributeValueMemberB{Value: v.Binary()}, nil
	case events.DataTypeBoolean:
		return &types.AttributeValueMemberBOOL{Value: v.Boolean()}, nil
	case events.DataTypeNull:
		return &types.AttributeValueMemberNULL{Value: true}, nil
	case events.DataTypeStringSet:
		return &types.AttributeValueMemberSS{Value: v.StringSet()}, nil
	case events.DataTypeNumberSet:
		return &types.AttributeValueMemberNS{Value: v.NumberSet()}, nil
	case events.DataTypeBinarySet:
		return &types.AttributeValueMemberBS{Value: v.BinarySet()}, nil
	case events.DataTypeList:
		list := v.List()
		out := make([]types.AttributeValue, len(list))
		for i, e := range list {
			av, err := attributeValue(e)
			if err != nil {
				return nil, err
			}
			out[i] = av
		}
		return &types.AttributeValueMemberL{Value: out}, nil
	case events.DataTypeMap:
		m := v.Map()
		out := make(map[string]types.AttributeValue, len(m))
		for k, e := range m {
			av, err := attributeValue(e)
			if err != nil {
				return nil, err
			}
			out[k] = av
		}
		return &types.AttributeValueMemberM{Value: out}, nil
	}
	return nil, fmt.Errorf("unknown data type %d", v.DataType())
}
