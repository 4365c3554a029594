package streams

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

// TestToEventRecordJSON checks the converted record marshals to the JSON
// Lambda sends for the same stream record.
func TestToEventRecordJSON(t *testing.T) {
	t.Parallel()
	at := time.Unix(1700000000, 0)
	rec := types.Record{
		AwsRegion: aws.String("us-east-1"), EventID: aws.String("e1"), EventName: types.OperationTypeInsert,
		EventSource: aws.String("aws:dynamodb"), EventVersion: aws.String("1.1"),
		Dynamodb: &types.StreamRecord{
			ApproximateCreationDateTime: &at,
			Keys:                        map[string]types.AttributeValue{"PK": &types.AttributeValueMemberS{Value: "t#1"}},
			NewImage: map[string]types.AttributeValue{
				"PK": &types.AttributeValueMemberS{Value: "t#1"}, "N": &types.AttributeValueMemberN{Value: "3"},
				"B": &types.AttributeValueMemberBOOL{Value: true}, "Z": &types.AttributeValueMemberNULL{Value: true},
				"SS": &types.AttributeValueMemberSS{Value: []string{"a"}},
				"L":  &types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberN{Value: "1"}}},
				"M":  &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"k": &types.AttributeValueMemberS{Value: "v"}}},
			},
			SequenceNumber: aws.String("100"), SizeBytes: aws.Int64(42), StreamViewType: types.StreamViewTypeNewAndOldImages,
		},
	}
	got, err := json.Marshal(ToEventRecord(rec))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"awsRegion":"us-east-1","dynamodb":{"ApproximateCreationDateTime":1700000000,"Keys":{"PK":{"S":"t#1"}},` +
		`"NewImage":{"B":{"BOOL":true},"L":{"L":[{"N":"1"}]},"M":{"M":{"k":{"S":"v"}}},"N":{"N":"3"},"PK":{"S":"t#1"},"SS":{"SS":["a"]},"Z":{"NULL":true}},` +
		`"SequenceNumber":"100","SizeBytes":42,"StreamViewType":"NEW_AND_OLD_IMAGES"},` +
		`"eventID":"e1","eventName":"INSERT","eventSource":"aws:dynamodb","eventVersion":"1.1","eventSourceARN":""}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
