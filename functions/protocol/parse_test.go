package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParse(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", MaxIDLength)
	tests := []struct {
		name    string
		give    string
		want    Message
		wantErr string // substring of the validation message; "" means valid
		wantID  string // request id carried by the error
	}{
		{name: "minimal", give: `{"action":"echo"}`, want: Message{Action: "echo"}},
		{name: "full", give: `{"action":"echo","id":"a-1","payload":{ "x" : 1 },"metadata":{"k":"v","priority":3,"flag":true}}`,
			want: Message{Action: "echo", ID: "a-1", Payload: json.RawMessage(`{"x":1}`), Metadata: map[string]string{"k": "v", "priority": "3", "flag": "true"}}},
		{name: "null payload and metadata", give: `{"action":"echo","payload":null,"metadata":null}`, want: Message{Action: "echo"}},
		{name: "id at limit", give: `{"action":"a","id":"` + long + `"}`, want: Message{Action: "a", ID: long}},
		{name: "not json", give: `hello`, wantErr: "JSON object"},
		{name: "array", give: `[1]`, wantErr: "JSON object"},
		{name: "null", give: `null`, wantErr: "JSON object"},
		{name: "trailing data", give: `{"action":"a"} {}`, wantErr: "JSON object"},
		{name: "trailing garbage", give: `{"action":"a"} x`, wantErr: "JSON object"},
		{name: "trailing NUL", give: "{\"action\":\"a\"}\x00", wantErr: "JSON object"},
		{name: "trailing whitespace", give: "{\"action\":\"a\"}\r\n ", want: Message{Action: "a"}},
		{name: "invalid utf8", give: "{\"action\":\"\xff\"}", wantErr: "UTF-8"},
		{name: "missing action", give: `{"id":"r1"}`, wantErr: "action is required", wantID: "r1"},
		{name: "empty action", give: `{"action":"","id":"r1"}`, wantErr: "action must not be empty", wantID: "r1"},
		{name: "numeric action", give: `{"action":5,"id":"r1"}`, wantErr: "action must be a string", wantID: "r1"},
		{name: "long action", give: `{"action":"` + strings.Repeat("a", MaxActionLength+1) + `"}`, wantErr: "action is 65 characters"},
		{name: "numeric id", give: `{"action":"a","id":7}`, wantErr: "id must be a string"},
		{name: "empty id", give: `{"action":"a","id":""}`, wantErr: "id must not be empty"},
		{name: "long id", give: `{"action":"a","id":"` + long + `y"}`, wantErr: "id is 129 characters"},
		{name: "control char id", give: `{"action":"a","id":"a\nb"}`, wantErr: "printable"},
		{name: "payload string", give: `{"action":"a","id":"r","payload":"x"}`, wantErr: "payload must be a JSON object", wantID: "r"},
		{name: "payload array", give: `{"action":"a","payload":[1]}`, wantErr: "payload must be a JSON object"},
		{name: "payload too large", give: `{"action":"a","payload":{"x":"` + strings.Repeat("y", 100) + `"}}`, wantErr: "more than the limit of 64"},
		{name: "metadata array", give: `{"action":"a","metadata":[]}`, wantErr: "metadata must be a JSON object"},
		{name: "metadata nested", give: `{"action":"a","metadata":{"k":{}}}`, wantErr: `metadata "k"`},
		{name: "metadata null value", give: `{"action":"a","metadata":{"k":null}}`, wantErr: `metadata "k"`},
		{name: "metadata empty key", give: `{"action":"a","metadata":{"":"v"}}`, wantErr: "metadata key"},
		{name: "metadata long value", give: `{"action":"a","metadata":{"k":"` + strings.Repeat("v", MaxMetadataValueLength+1) + `"}}`, wantErr: "longer than"},
		{name: "unknown field", give: `{"action":"a","id":"r","type":"x"}`, wantErr: `unknown field "type"`, wantID: "r"},
		// A repeated key means one thing to Go (the last wins) and another to
		// parsers keeping the first: refused, however it is spelled.
		{name: "repeated action", give: `{"action":"a","id":"r","action":"b"}`, wantErr: `field "action" appears more than once`, wantID: "r"},
		{name: "repeated escaped action", give: `{"action":"a","\u0061ction":"b"}`, wantErr: `field "action" appears more than once`},
		{name: "repeated id", give: `{"action":"a","id":"r","id":"s"}`, wantErr: `field "id" appears more than once`},
		{name: "repeated metadata key", give: `{"action":"a","id":"r","metadata":{"priority":1,"priority":2}}`, wantErr: `metadata field "priority" appears more than once`, wantID: "r"},
		{name: "metadata number out of range", give: `{"action":"a","metadata":{"n":1e400}}`, wantErr: `metadata "n": number is out of range`},
		// The error frame must fit the 32 KB frame limit whatever the key.
		{name: "huge unknown field", give: `{"action":"a","` + strings.Repeat("k", 40000) + `":1}`, wantErr: `unknown field "kkkk`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Parse([]byte(tt.give), 64)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse(%s) error = %v, want nil", tt.give, err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("Parse(%s) = %+v, want %+v", tt.give, got, tt.want)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Parse(%s) error = %v, want a *ValidationError", tt.give, err)
			}
			if !strings.Contains(ve.Message, tt.wantErr) || len(ve.Message) > 512 {
				t.Errorf("Parse(%.200s) message = %.600q, want it to contain %q and be short", tt.give, ve.Message, tt.wantErr)
			}
			if ve.RequestID != tt.wantID {
				t.Errorf("Parse(%s) request id = %q, want %q", tt.give, ve.RequestID, tt.wantID)
			}
			if f := ve.Frame(); f.Type != TypeError || f.Error.Code != CodeValidation || f.RequestID != tt.wantID {
				t.Errorf("Frame() = %+v, want a VALIDATION_ERROR error frame for %q", f, tt.wantID)
			}
		})
	}
}

func TestParseTarget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		give    string
		want    Target
		wantErr string
	}{
		{name: "request id", give: `{"request_id":"r1"}`, want: Target{RequestID: "r1"}},
		{name: "event types deduplicated", give: `{"request_id":"r1","event_types":["complete","complete","progress"]}`,
			want: Target{RequestID: "r1", EventTypes: []string{"complete", "progress"}}},
		{name: "empty event types", give: `{"request_id":"r1","event_types":[]}`, want: Target{RequestID: "r1"}},
		{name: "no payload", give: ``, wantErr: "request_id is required"},
		{name: "missing request id", give: `{}`, wantErr: "request_id is required"},
		{name: "request id not a string", give: `{"request_id":1}`, wantErr: "payload must be"},
		{name: "unknown field", give: `{"request_id":"r","x":1}`, wantErr: "payload must be"},
		{name: "unknown event type", give: `{"request_id":"r","event_types":["error"]}`, wantErr: `unknown event type "error"`},
		{name: "long request id", give: `{"request_id":"` + strings.Repeat("r", MaxIDLength+1) + `"}`, wantErr: "payload.request_id is 129"},
		{name: "repeated request id", give: `{"request_id":"a","request_id":"b"}`, wantErr: `payload field "request_id" appears more than once`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseTarget("m1", json.RawMessage(tt.give))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseTarget(%s) error = %v", tt.give, err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("ParseTarget(%s) = %+v, want %+v", tt.give, got, tt.want)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || !strings.Contains(ve.Message, tt.wantErr) || ve.RequestID != "m1" {
				t.Errorf("ParseTarget(%s) error = %v, want a validation error for m1 containing %q", tt.give, err, tt.wantErr)
			}
		})
	}
}

// sameJSON reports whether a and b hold the same JSON value (or are both
// empty): json.Marshal escapes <, > and & in a RawMessage, which changes its
// text, not its value.
func sameJSON(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var va, vb any
	return json.Unmarshal(a, &va) == nil && json.Unmarshal(b, &vb) == nil && reflect.DeepEqual(va, vb)
}

// FuzzParse checks Parse's invariants on arbitrary input: it never panics, a
// refusal is always a *ValidationError, and an accepted message satisfies every
// documented rule and survives a round trip through its wire form.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"action":"echo","id":"x","payload":{"a":[1,2]},"metadata":{"k":"v"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 256
		msg, err := Parse(data, limit)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Message == "" {
				t.Fatalf("Parse error %v is not a validation error with a message", err)
			}
			return
		}
		if msg.Action == "" || utf8.RuneCountInString(msg.Action) > MaxActionLength {
			t.Fatalf("accepted action %q", msg.Action)
		}
		if msg.ID != "" && CheckID(msg.ID) != nil {
			t.Fatalf("accepted id %q", msg.ID)
		}
		if len(msg.Payload) > limit || (msg.Payload != nil && !json.Valid(msg.Payload)) {
			t.Fatalf("accepted payload %q", msg.Payload)
		}
		// Encoded without HTML escaping, which would grow the payload
		// (& becomes \u0026) past the limit it was accepted under.
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(msg); err != nil {
			t.Fatalf("marshal accepted message: %v", err)
		}
		wire := bytes.TrimSpace(buf.Bytes())
		again, err := Parse(wire, limit)
		if err != nil {
			t.Fatalf("re-parse %s: %v", wire, err)
		}
		if again.Action != msg.Action || again.ID != msg.ID || !sameJSON(again.Payload, msg.Payload) || len(again.Metadata) != len(msg.Metadata) {
			t.Fatalf("round trip changed %+v into %+v", msg, again)
		}
	})
}
