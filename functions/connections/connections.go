// Package connections is a small client for the API Gateway WebSocket
// management API (@connections): post a message to a connection, read its
// state, close it. Requests are signed with SigV4 (service execute-api). The
// endpoint is configurable, so the local runtime serves the same API.
package connections

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// API Gateway WebSocket size limits.
const (
	// MaxFrameBytes is the largest WebSocket frame API Gateway handles.
	MaxFrameBytes = 32 << 10
	// MaxMessageBytes is the largest message @connections accepts.
	MaxMessageBytes = 128 << 10
)

// Errors returned by the client; test them with errors.Is.
var (
	// ErrGone: the connection no longer exists (HTTP 410).
	ErrGone = errors.New("connection gone")
	// ErrThrottled: API Gateway kept throttling after the client's retries (HTTP 429).
	ErrThrottled = errors.New("connections API throttled")
	// ErrTooLarge: the data exceeds the frame limit; it was not sent.
	ErrTooLarge = errors.New("message too large")
)

// Info is what GET @connections/{id} reports about a connection.
type Info struct {
	ConnectedAt  time.Time `json:"connectedAt"`
	LastActiveAt time.Time `json:"lastActiveAt"`
	Identity     struct {
		SourceIP  string `json:"sourceIp"`
		UserAgent string `json:"userAgent"`
	} `json:"identity"`
}

// Client calls one @connections endpoint. It is safe for concurrent use.
type Client struct {
	endpoint   string
	httpClient *http.Client
	creds      aws.CredentialsProvider
	region     string
	signer     *v4.Signer
	maxBytes   int
	retries    int
	baseDelay  time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (default: one with a 10 s timeout).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.httpClient = h } }

// WithMaxBytes sets the largest message Post sends, at most MaxMessageBytes.
// Default: MaxFrameBytes, so every message fits in one frame.
func WithMaxBytes(n int) Option {
	return func(c *Client) { c.maxBytes = min(n, MaxMessageBytes) }
}

// WithRetries sets how many times a throttled (429) or failed (5xx) call is
// retried, with exponential backoff and full jitter from base. Default: 3, 50 ms.
func WithRetries(n int, base time.Duration) Option {
	return func(c *Client) { c.retries, c.baseDelay = n, base }
}

// New returns a client for endpoint, the stage's base URL
// (https://{api-id}.execute-api.{region}.amazonaws.com/{stage}, or http:// for
// the local runtime), signing with awsCfg's credentials and region. Calls are
// unsigned when awsCfg has no credentials.
func New(endpoint string, awsCfg aws.Config, opts ...Option) *Client {
	c := &Client{
		endpoint:   strings.TrimRight(endpoint, "/"),
		httpClient: &http.Client{Timeout: 10 * time.Second},
		creds:      awsCfg.Credentials,
		region:     awsCfg.Region,
		signer:     v4.NewSigner(),
		maxBytes:   MaxFrameBytes,
		retries:    3,
		baseDelay:  50 * time.Millisecond,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// EndpointFor returns the @connections endpoint of an API Gateway stage as seen
// in a WebSocket event's request context.
func EndpointFor(domainName, stage string) string {
	return "https://" + domainName + "/" + stage
}

// Endpoint returns the client's endpoint.
func (c *Client) Endpoint() string { return c.endpoint }

// Post sends data to the connection as one text message. Data larger than the
// client's limit is refused with ErrTooLarge and not sent.
func (c *Client) Post(ctx context.Context, connectionID string, data []byte) error {
	if len(data) > c.maxBytes {
		return fmt.Errorf("post to %s: %d bytes exceed %d: %w", connectionID, len(data), c.maxBytes, ErrTooLarge)
	}
	_, err := c.do(ctx, http.MethodPost, connectionID, data)
	return err
}

// Get returns the state of the connection.
func (c *Client) Get(ctx context.Context, connectionID string) (Info, error) {
	var info Info
	body, err := c.do(ctx, http.MethodGet, connectionID, nil)
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(body, &info); err != nil {
		return info, fmt.Errorf("get %s: decode: %w", connectionID, err)
	}
	return info, nil
}

// Delete closes the connection.
func (c *Client) Delete(ctx context.Context, connectionID string) error {
	_, err := c.do(ctx, http.MethodDelete, connectionID, nil)
	return err
}

func (c *Client) do(ctx context.Context, method, connectionID string, body []byte) ([]byte, error) {
	if c.endpoint == "" {
		return nil, fmt.Errorf("%s %s: no @connections endpoint configured", method, connectionID)
	}
	u := c.endpoint + "/@connections/" + url.PathEscape(connectionID)
	var lastStatus int
	for attempt := 0; ; attempt++ {
		status, respBody, err := c.once(ctx, method, u, body)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, connectionID, err)
		}
		switch {
		case status >= 200 && status < 300:
			return respBody, nil
		case status == http.StatusGone:
			return nil, fmt.Errorf("%s %s: %w", method, connectionID, ErrGone)
		case status == http.StatusRequestEntityTooLarge:
			return nil, fmt.Errorf("%s %s: %w", method, connectionID, ErrTooLarge)
		case status == http.StatusTooManyRequests || status >= 500:
			lastStatus = status
		default:
			return nil, fmt.Errorf("%s %s: HTTP %d: %s", method, connectionID, status, snippet(respBody))
		}
		if attempt >= c.retries {
			break
		}
		if err := sleep(ctx, c.backoff(attempt)); err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, connectionID, err)
		}
	}
	if lastStatus == http.StatusTooManyRequests {
		return nil, fmt.Errorf("%s %s: %w", method, connectionID, ErrThrottled)
	}
	return nil, fmt.Errorf("%s %s: HTTP %d after %d retries", method, connectionID, lastStatus, c.retries)
}

func (c *Client) once(ctx context.Context, method, u string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.creds != nil {
		creds, err := c.creds.Retrieve(ctx)
		if err != nil {
			return 0, nil, fmt.Errorf("credentials: %w", err)
		}
		sum := sha256.Sum256(body)
		if err := c.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "execute-api", c.region, time.Now()); err != nil {
			return 0, nil, fmt.Errorf("sign: %w", err)
		}
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, nil, fmt.Errorf("read response: %w", err)
	}
	return resp.StatusCode, respBody, nil
}

// backoff is full jitter over baseDelay*2^attempt.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.baseDelay << attempt
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func snippet(b []byte) string {
	const n = 200
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
