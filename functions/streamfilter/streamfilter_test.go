package streamfilter

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

func TestMatch(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/stream-records.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev events.DynamoDBEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{
		"insert-pending":    true,
		"insert-completed":  false,
		"modify-progress":   false,
		"remove-ttl":        false,
		"modify-to-pending": false,
	}
	if len(ev.Records) != len(want) {
		t.Fatalf("fixture has %d records, want %d", len(ev.Records), len(want))
	}
	for _, rec := range ev.Records {
		if got := Match(rec); got != want[rec.EventID] {
			t.Errorf("Match(%s) = %v, want %v", rec.EventID, got, want[rec.EventID])
		}
	}
}

func TestPatternsAreJSON(t *testing.T) {
	t.Parallel()
	for _, p := range Patterns() {
		var v map[string]any
		if err := json.Unmarshal([]byte(p), &v); err != nil {
			t.Errorf("pattern %s: %v", p, err)
		}
	}
	if got, want := Patterns()[0], `{"dynamodb":{"NewImage":{"Status":{"S":["PENDING"]}}},"eventName":["INSERT"]}`; got != want {
		t.Errorf("Patterns()[0] = %s, want %s", got, want)
	}
}
