package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Limits bound what Parse accepts.
const (
	// DefaultMaxPayloadBytes is the default cap on a message's payload.
	DefaultMaxPayloadBytes = 64 << 10
	// MaxIDLength caps a message id (the idempotency key), in characters.
	MaxIDLength = 128
	// MaxActionLength caps an action name, in characters.
	MaxActionLength = 64
	// MaxMetadataEntries caps the number of metadata keys.
	MaxMetadataEntries = 32
	// MaxMetadataKeyLength caps a metadata key, in characters.
	MaxMetadataKeyLength = 64
	// MaxMetadataValueLength caps a metadata value, in characters.
	MaxMetadataValueLength = 1024
)

// ValidationError says why a message was refused. RequestID is the message's
// id when one could be read, so the error frame can carry it.
type ValidationError struct {
	RequestID string
	Message   string
}

func (e *ValidationError) Error() string { return e.Message }

// Frame returns the error frame that answers the refused message.
func (e *ValidationError) Frame() Error {
	return Error{Type: TypeError, RequestID: e.RequestID, Error: ErrorBody{Code: CodeValidation, Message: e.Message}}
}

// Parse decodes and validates a client message: a JSON object with a
// non-empty string "action", an optional string "id" of at most MaxIDLength
// characters, an optional object "payload" of at most maxPayloadBytes bytes and
// an optional object "metadata" whose values are strings, numbers or booleans
// (numbers and booleans are kept as their JSON text). Unknown fields are
// refused, so typos surface. A refused message yields a *ValidationError.
func Parse(data []byte, maxPayloadBytes int) (Message, error) {
	var msg Message
	if !utf8.Valid(data) {
		return msg, invalid("", "message must be UTF-8 JSON text")
	}
	var fields map[string]json.RawMessage
	if err := decodeStrict(data, &fields); err != nil || fields == nil {
		return msg, invalid("", "message must be a JSON object")
	}
	dup := duplicateKey(data)
	if dup == "id" {
		return msg, invalid("", repeated(dup))
	}
	// The id is read first so that every later error can carry it.
	if raw, ok := fields["id"]; ok {
		id, err := parseID(raw)
		if err != nil {
			return msg, invalid("", err.Error())
		}
		msg.ID = id
	}
	if dup != "" {
		return msg, invalid(msg.ID, repeated(dup))
	}
	for name := range fields {
		switch name {
		case "action", "id", "payload", "metadata":
		default:
			// Truncated: the error frame must stay far below the frame limit
			// whatever the client sent.
			return msg, invalid(msg.ID, fmt.Sprintf("unknown field %q (allowed: action, id, payload, metadata)", truncate(name)))
		}
	}
	action, err := parseAction(fields["action"])
	if err != nil {
		return msg, invalid(msg.ID, err.Error())
	}
	msg.Action = action
	if raw, ok := fields["payload"]; ok && !isNull(raw) {
		if !isObject(raw) {
			return msg, invalid(msg.ID, "payload must be a JSON object")
		}
		if maxPayloadBytes > 0 && len(raw) > maxPayloadBytes {
			return msg, invalid(msg.ID, fmt.Sprintf("payload is %d bytes, more than the limit of %d", len(raw), maxPayloadBytes))
		}
		msg.Payload = compact(raw)
	}
	if raw, ok := fields["metadata"]; ok && !isNull(raw) {
		md, err := parseMetadata(raw)
		if err != nil {
			return msg, invalid(msg.ID, err.Error())
		}
		msg.Metadata = md
	}
	return msg, nil
}

func invalid(id, message string) error { return &ValidationError{RequestID: id, Message: message} }

// duplicateKey returns a key that the JSON object data names more than once,
// or "" when there is none (or data is not an object). Go's decoder keeps the
// last of repeated keys while other parsers keep the first, so a repeated key
// could make a message mean one thing to a proxy, a log reader or a client
// library and another to Streamer: such messages are refused.
func duplicateKey(data []byte) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return ""
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		key, _ := tok.(string)
		if seen[key] {
			return key
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return ""
		}
	}
	return ""
}

// repeated is the validation message for a key given twice.
func repeated(key string) string {
	return fmt.Sprintf("field %q appears more than once", truncate(key))
}

// decodeStrict decodes exactly one JSON value from data into v.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return err
	}
	// Anything but the end of input after the value is refused, including
	// what is not JSON at all (a NUL byte, garbage): Token reports those as
	// errors, not as a token.
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

func parseID(raw json.RawMessage) (string, error) {
	var id string
	if err := json.Unmarshal(raw, &id); err != nil {
		return "", errors.New("id must be a string")
	}
	if err := CheckID(id); err != nil {
		return "", err
	}
	return id, nil
}

// CheckID validates a request id: 1 to MaxIDLength printable characters.
func CheckID(id string) error {
	switch n := utf8.RuneCountInString(id); {
	case n == 0:
		return errors.New("id must not be empty (omit it to have one generated)")
	case n > MaxIDLength:
		return fmt.Errorf("id is %d characters, more than the limit of %d", n, MaxIDLength)
	}
	for _, r := range id {
		if !unicode.IsPrint(r) {
			return errors.New("id must contain printable characters only")
		}
	}
	return nil
}

func parseAction(raw json.RawMessage) (string, error) {
	if raw == nil {
		return "", errors.New("action is required")
	}
	var action string
	if err := json.Unmarshal(raw, &action); err != nil {
		return "", errors.New("action must be a string")
	}
	switch n := utf8.RuneCountInString(action); {
	case n == 0:
		return "", errors.New("action must not be empty")
	case n > MaxActionLength:
		return "", fmt.Errorf("action is %d characters, more than the limit of %d", n, MaxActionLength)
	}
	return action, nil
}

func parseMetadata(raw json.RawMessage) (map[string]string, error) {
	if !isObject(raw) {
		return nil, errors.New("metadata must be a JSON object")
	}
	if dup := duplicateKey(raw); dup != "" {
		return nil, errors.New("metadata " + repeated(dup))
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, errors.New("metadata must be a JSON object")
	}
	if len(fields) > MaxMetadataEntries {
		return nil, fmt.Errorf("metadata has %d entries, more than the limit of %d", len(fields), MaxMetadataEntries)
	}
	md := make(map[string]string, len(fields))
	for k, v := range fields {
		if n := utf8.RuneCountInString(k); n == 0 || n > MaxMetadataKeyLength {
			return nil, fmt.Errorf("metadata key %q must have 1 to %d characters", truncate(k), MaxMetadataKeyLength)
		}
		s, err := scalarText(v)
		if err != nil {
			return nil, fmt.Errorf("metadata %q: %w", k, err)
		}
		if utf8.RuneCountInString(s) > MaxMetadataValueLength {
			return nil, fmt.Errorf("metadata %q is longer than %d characters", k, MaxMetadataValueLength)
		}
		md[k] = s
	}
	return md, nil
}

// scalarText returns a string's value, or a number's or boolean's JSON text.
func scalarText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", errors.New("value must be a string, number or boolean")
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", errors.New("value must be a string, number or boolean")
		}
		return s, nil
	case 't', 'f':
		return string(raw), nil
	case 'n', '{', '[':
		return "", errors.New("value must be a string, number or boolean")
	default:
		if _, err := strconv.ParseFloat(string(raw), 64); errors.Is(err, strconv.ErrRange) {
			return "", errors.New("number is out of range")
		} else if err != nil {
			return "", errors.New("value must be a string, number or boolean")
		}
		return string(raw), nil
	}
}

func truncate(s string) string {
	if utf8.RuneCountInString(s) <= 32 {
		return s
	}
	return string([]rune(s)[:32]) + "…"
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

func compact(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw
	}
	return b.Bytes()
}

// Event types a subscription can select.
const (
	EventProgress = "progress"
	EventComplete = "complete"
)

// Target is the payload of the built-in actions that name a request:
// subscribe, unsubscribe, status and cancel.
type Target struct {
	// RequestID is the id of the request (as the client knows it).
	RequestID string `json:"request_id"`
	// EventTypes selects the events a subscription receives (progress,
	// complete); empty means all. Only subscribe reads it.
	EventTypes []string `json:"event_types,omitempty"`
}

// ParseTarget decodes and validates the payload of a built-in action that names
// a request. A refused payload yields a *ValidationError carrying msgID.
func ParseTarget(msgID string, payload json.RawMessage) (Target, error) {
	var t Target
	if len(payload) == 0 {
		return t, invalid(msgID, "payload.request_id is required")
	}
	if dup := duplicateKey(payload); dup != "" {
		return t, invalid(msgID, "payload "+repeated(dup))
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return t, invalid(msgID, "payload must be {\"request_id\": string, \"event_types\": [\"progress\"|\"complete\"]}")
	}
	if t.RequestID == "" {
		return t, invalid(msgID, "payload.request_id is required")
	}
	if err := CheckID(t.RequestID); err != nil {
		return t, invalid(msgID, "payload.request_"+err.Error())
	}
	seen := map[string]bool{}
	types := t.EventTypes[:0]
	for _, et := range t.EventTypes {
		if et != EventProgress && et != EventComplete {
			return t, invalid(msgID, fmt.Sprintf("payload.event_types: unknown event type %q (allowed: progress, complete)", truncate(et)))
		}
		if !seen[et] {
			seen[et] = true
			types = append(types, et)
		}
	}
	t.EventTypes = types
	if len(t.EventTypes) == 0 {
		t.EventTypes = nil
	}
	return t, nil
}
