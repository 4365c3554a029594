// Package protocol defines Streamer's WebSocket wire format: the message a
// client sends and the frames the server answers with. All frames are JSON
// text frames.
package protocol

import "encoding/json"

// Message is what a client sends:
// {"action": "...", "id": "...", "payload": {...}, "metadata": {...}}.
// ID is optional (generated when absent) and is the idempotency key.
type Message struct {
	Action   string            `json:"action"`
	ID       string            `json:"id,omitempty"`
	Payload  json.RawMessage   `json:"payload,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Frame types sent by the server.
const (
	TypeAcknowledgment = "acknowledgment"
	TypeResponse       = "response"
	TypeProgress       = "progress"
	TypeComplete       = "complete"
	TypeError          = "error"
	TypePong           = "pong"
)

// Error codes carried in error frames and failed completions.
const (
	CodeValidation   = "VALIDATION_ERROR"
	CodeUnauthorized = "UNAUTHORIZED"
	CodeNotFound     = "NOT_FOUND"
	CodeInternal     = "INTERNAL_ERROR"
	CodeTimeout      = "TIMEOUT"
	CodeRateLimited  = "RATE_LIMITED"
	// CodeCancelled ends a request the client cancelled (complete frame).
	CodeCancelled = "CANCELLED"
)

// Acknowledgment tells the client an async request is stored and queued.
type Acknowledgment struct {
	Type      string `json:"type"`
	RequestID string `json:"request_id"`
	Status    string `json:"status"`
	Message   string `json:"message,omitempty"`
}

// Response answers a sync action or a built-in action.
type Response struct {
	Type      string `json:"type"`
	RequestID string `json:"request_id,omitempty"`
	Success   bool   `json:"success"`
	Data      any    `json:"data,omitempty"`
}

// Progress reports how far an async request has come.
type Progress struct {
	Type       string         `json:"type"`
	RequestID  string         `json:"request_id"`
	Percentage float64        `json:"percentage"`
	Message    string         `json:"message,omitempty"`
	Metadata   map[string]any `json:"metadata,omitempty"`
}

// Complete is the final frame of an async request.
type Complete struct {
	Type      string          `json:"type"`
	RequestID string          `json:"request_id"`
	Success   bool            `json:"success"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *ErrorBody      `json:"error,omitempty"`
}

// Error reports that a message could not be handled.
type Error struct {
	Type      string    `json:"type"`
	RequestID string    `json:"request_id,omitempty"`
	Error     ErrorBody `json:"error"`
}

// ErrorBody is the code, a human-readable message and optional details.
// It never carries internals (stack traces, AWS error text).
type ErrorBody struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
}

// Pong answers a ping.
type Pong struct {
	Type      string `json:"type"`
	RequestID string `json:"request_id,omitempty"`
}

// StatusData is the data of the response to a status message: where a request
// stands, its last progress and checkpoint, and its result or error.
type StatusData struct {
	RequestID       string          `json:"request_id"`
	Action          string          `json:"action"`
	Status          string          `json:"status"`
	Progress        float64         `json:"progress"`
	ProgressMessage string          `json:"progress_message,omitempty"`
	Checkpoint      json.RawMessage `json:"checkpoint,omitempty"`
	Result          json.RawMessage `json:"result,omitempty"`
	Error           *ErrorBody      `json:"error,omitempty"`
	Attempt         int             `json:"attempt"`
	RetryCount      int             `json:"retry_count"`
	Priority        int             `json:"priority"`
	CreatedAt       int64           `json:"created_at"`
	ProcessAfter    int64           `json:"process_after,omitempty"`
	ProcessedAt     int64           `json:"processed_at,omitempty"`
}
