package ddbclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// TestRetries checks which errors the client retries: a transaction conflict
// and throttling are retried until the call succeeds; a failed condition is
// returned at once.
func TestRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code      string
		wantCalls int32
		wantErr   bool
	}{
		{"TransactionConflictException", 2, false},
		{"ThrottlingException", 2, false},
		{"ConditionalCheckFailedException", 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/x-amz-json-1.0")
				if calls.Add(1) == 1 {
					w.WriteHeader(http.StatusBadRequest)
					_, _ = w.Write([]byte(`{"__type":"com.amazonaws.dynamodb.v20120810#` + tt.code + `","message":"injected"}`))
					return
				}
				_, _ = w.Write([]byte(`{}`))
			}))
			t.Cleanup(srv.Close)
			cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")}
			_, err := New(cfg, srv.URL).UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
				TableName: aws.String("t"), Key: map[string]types.AttributeValue{"k": &types.AttributeValueMemberS{Value: "v"}},
			})
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("calls = %d, want %d", got, tt.wantCalls)
			}
			var ccf *types.ConditionalCheckFailedException
			if tt.wantErr != (err != nil) || (tt.wantErr && !errors.As(err, &ccf)) {
				t.Errorf("err = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}
