package metrics

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func TestEmit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		dims map[string]string
		give []Metric
		want string
	}{
		{
			name: "one metric by action",
			dims: map[string]string{"Action": "echo"},
			give: []Metric{{Name: "ProcessingTime", Unit: Milliseconds, Value: 12.5}},
			want: `{"Action":"echo","ProcessingTime":12.5,"Service":"processor","_aws":{"CloudWatchMetrics":[{"Dimensions":[["Service","Action"]],"Metrics":[{"Name":"ProcessingTime","Unit":"Milliseconds"}],"Namespace":"Streamer"}],"Timestamp":1700000000000}}`,
		},
		{
			name: "two counts, sorted dimensions, service not overridden",
			dims: map[string]string{"Outcome": "completed", "Action": "a", "Service": "x"},
			give: []Metric{{Name: "Outcomes", Unit: Count, Value: 1}, {Name: "Retries", Unit: Count, Value: 0}},
			want: `{"Action":"a","Outcome":"completed","Outcomes":1,"Retries":0,"Service":"processor","_aws":{"CloudWatchMetrics":[{"Dimensions":[["Service","Action","Outcome"]],"Metrics":[{"Name":"Outcomes","Unit":"Count"},{"Name":"Retries","Unit":"Count"}],"Namespace":"Streamer"}],"Timestamp":1700000000000}}`,
		},
		{name: "nothing to emit", give: nil, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			w := New(&buf, "processor")
			w.now = func() time.Time { return time.UnixMilli(1700000000000) }
			if err := w.Emit(tt.dims, tt.give...); err != nil {
				t.Fatal(err)
			}
			got := buf.String()
			if tt.want == "" {
				if got != "" {
					t.Fatalf("got %q, want nothing", got)
				}
				return
			}
			if got != tt.want+"\n" {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			var doc map[string]any
			if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
				t.Fatalf("not JSON: %v", err)
			}
		})
	}
}

func TestEmitRejectsClash(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	err := New(&buf, "router").Emit(map[string]string{"Action": "a"}, Metric{Name: "Action", Unit: Count, Value: 1})
	if err == nil {
		t.Fatal("got nil error for a metric named like a dimension")
	}
	if buf.Len() != 0 {
		t.Errorf("wrote %q on error", buf.String())
	}
}

func TestDuration(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if err := New(&buf, "processor").Duration("ProcessingTime", 1500*time.Microsecond, nil); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if got := doc["ProcessingTime"]; got != 1.5 {
		t.Errorf("got %v ms, want 1.5", got)
	}
}
