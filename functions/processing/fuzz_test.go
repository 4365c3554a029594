package processing

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamer-dev/streamer/functions/store"
)

// FuzzRequestFromImage feeds arbitrary stream images, in the JSON form the
// processor Lambda receives them, to the decoder the processor uses. It never
// panics, and a request it decodes round-trips: stored again (the store's
// marshalling) and streamed back, it decodes to the same request, and the
// image's own JSON round trip decodes to it too.
func FuzzRequestFromImage(f *testing.F) {
	full := store.Request{
		RequestID: "t1#r1", ID: "r1", ConnectionID: "c1", TenantID: "t1", UserID: "u1", Status: store.StatusRetrying,
		CreatedAt: 1796385600000, Action: "delay", Payload: `{"seconds":1}`, Metadata: map[string]string{"priority": "3"},
		Priority: 3, ProcessAfter: 1796385601000, Attempt: 2, RetryCount: 1, LeaseOwner: "run-1", LeaseExpiresAt: 1796385660000,
		Progress: 42.5, ProgressMessage: "step 2", ProgressAt: 1796385600500, Checkpoint: `{"step":2}`,
		Error: &store.ErrorInfo{Code: "INTERNAL_ERROR", Message: "boom"}, TTL: 1796990400,
	}
	f.Add(imageJSON(f, full))
	f.Add(imageJSON(f, store.Request{RequestID: "t#x", Status: store.StatusPending}))
	for _, s := range []string{
		`{}`, `{"Attempt":{"S":"one"}}`, `{"Priority":{"N":"1e400"}}`, `{"Progress":{"N":"NaN"}}`,
		`{"Metadata":{"M":{"k":{"N":"1"}}}}`, `{"Error":{"M":{}}}`, `{"Error":{"NULL":true}}`,
		`{"X":{"L":[{"NULL":true},{"BS":["AA=="]},{"NS":["1"]}]}}`, `{"Status":{"SS":["PENDING"]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var image map[string]events.DynamoDBAttributeValue
		if json.Unmarshal(data, &image) != nil {
			return
		}
		r, err := requestFromImage(image)
		if err != nil {
			return
		}
		if _, ok := r.Metadata[""]; ok {
			// The store cannot write an empty map key (the SDK's marshalling
			// refuses it, and so does the router's metadata check), so no
			// image of a stored request carries one.
			return
		}
		stored := itemOf(t, r)
		again, err := requestFromImage(lambdaImage(stored))
		if err != nil {
			t.Fatalf("stored again and streamed back, %+v does not decode: %v", r, err)
		}
		if !reflect.DeepEqual(itemOf(t, again), stored) {
			t.Fatalf("round trip changed %+v into %+v", r, again)
		}
		text, err := json.Marshal(image)
		if err != nil {
			t.Fatalf("image does not marshal: %v", err)
		}
		var reread map[string]events.DynamoDBAttributeValue
		if err := json.Unmarshal(text, &reread); err != nil {
			t.Fatalf("image JSON %s does not round-trip: %v", text, err)
		}
		if r2, err := requestFromImage(reread); err != nil || !reflect.DeepEqual(itemOf(t, r2), stored) {
			t.Fatalf("the image's JSON round trip decodes to %+v, %v; want %+v", r2, err, r)
		}
	})
}

// imageJSON is r as the processor receives it: its stored item as a stream
// image, in Lambda's JSON.
func imageJSON(f *testing.F, r store.Request) []byte {
	item, err := attributevalue.MarshalMap(r)
	if err != nil {
		f.Fatal(err)
	}
	data, err := json.Marshal(lambdaImage(item))
	if err != nil {
		f.Fatal(err)
	}
	return data
}

// itemOf is r as the store writes it.
func itemOf(t *testing.T, r store.Request) map[string]types.AttributeValue {
	t.Helper()
	item, err := attributevalue.MarshalMap(r)
	if err != nil {
		t.Fatalf("request %+v does not marshal: %v", r, err)
	}
	return item
}

// lambdaImage converts a stored item to a stream image as Lambda delivers
// it: the inverse of requestFromImage's conversion.
func lambdaImage(item map[string]types.AttributeValue) map[string]events.DynamoDBAttributeValue {
	out := make(map[string]events.DynamoDBAttributeValue, len(item))
	for k, v := range item {
		out[k] = lambdaAttribute(v)
	}
	return out
}

// lambdaAttribute converts one SDK attribute value to Lambda's type.
func lambdaAttribute(v types.AttributeValue) events.DynamoDBAttributeValue {
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
			list[i] = lambdaAttribute(e)
		}
		return events.NewListAttribute(list)
	case *types.AttributeValueMemberM:
		return events.NewMapAttribute(lambdaImage(v.Value))
	}
	return events.NewNullAttribute()
}
