// Package streamfilter holds the filter criteria of the processor's event
// source mapping on the requests stream, and evaluates them.
//
// The construct deploys Patterns as the mapping's FilterCriteria; the local
// runtime's stream poller and the processor itself apply Match, so a record
// that the deployed mapping drops is dropped locally too.
package streamfilter

import (
	"encoding/json"
	"fmt"

	"github.com/aws/aws-lambda-go/events"

	"github.com/streamer-dev/streamer/functions/schema"
)

// StatusPending is the status of a newly queued request.
const StatusPending = "PENDING"

// pattern is a Lambda event filter pattern: nested objects whose leaves list
// the accepted values.
type pattern map[string]any

// patterns pass only new requests queued for processing: INSERT records whose
// new image has Status PENDING. Progress writes and status changes (MODIFY) and
// deletions, including TTL expiry (REMOVE), never start work. Retries, scheduled
// requests and reclaimed leases come through the retry queue instead.
var patterns = []pattern{{
	"eventName": []any{"INSERT"},
	"dynamodb": pattern{
		"NewImage": pattern{
			schema.AttrStatus: pattern{"S": []any{StatusPending}},
		},
	},
}}

// Patterns returns the filter patterns as the JSON strings that Lambda's
// FilterCriteria expects.
func Patterns() []string {
	out := make([]string, len(patterns))
	for i, p := range patterns {
		b, err := json.Marshal(p)
		if err != nil {
			panic(fmt.Sprintf("streamfilter: marshal pattern: %v", err))
		}
		out[i] = string(b)
	}
	return out
}

// Match reports whether the record passes any pattern, as Lambda's filtering
// would decide.
func Match(rec events.DynamoDBEventRecord) bool {
	b, err := json.Marshal(rec)
	if err != nil {
		return false
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return false
	}
	for _, p := range patterns {
		if matches(p, doc) {
			return true
		}
	}
	return false
}

func matches(p pattern, doc map[string]any) bool {
	for key, want := range p {
		got, ok := doc[key]
		if !ok {
			return false
		}
		switch w := want.(type) {
		case pattern:
			sub, ok := got.(map[string]any)
			if !ok || !matches(w, sub) {
				return false
			}
		case []any:
			if !containsValue(w, got) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func containsValue(accepted []any, got any) bool {
	for _, a := range accepted {
		if a == got {
			return true
		}
	}
	return false
}
