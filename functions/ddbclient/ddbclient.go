// Package ddbclient builds the DynamoDB client the Lambdas, the local runtime
// and the tests share, so they all retry the same errors.
package ddbclient

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// New returns a DynamoDB client for cfg, pointed at endpoint when it is not
// empty (DynamoDB Local). Besides the SDK's default retries (throttling,
// 5xx), it retries single-item writes that meet an ongoing transaction on the
// same item (TransactionConflictException), which the SDK leaves to the
// caller; Streamer's writes are conditional, so retrying them is safe.
func New(cfg aws.Config, endpoint string) *dynamodb.Client {
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		o.Retryer = retry.AddWithErrorCodes(o.Retryer, (&types.TransactionConflictException{}).ErrorCode())
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
}
