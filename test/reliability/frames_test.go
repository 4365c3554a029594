package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/functions/protocol"
	"github.com/streamer-dev/streamer/local"
	"github.com/streamer-dev/streamer/local/localtest"
)

// framesDir holds the adversarial frame corpus: one file per frame (.bin
// files go out as binary messages, the others as text) and expectations.json.
const framesDir = "testdata/frames"

// frameCase is one frame's expected answer, from expectations.json.
type frameCase struct {
	// File is the frame's file in framesDir.
	File string `json:"file"`
	// Code is the error frame's code; Says a part of its message.
	Code string `json:"code"`
	Says string `json:"says"`
	// RequestID is the id the error frame must carry ("" for none).
	RequestID string `json:"request_id"`
	// Close, when set, is the close code the gateway ends the connection
	// with instead of answering (as API Gateway does).
	Close websocket.StatusCode `json:"close"`
	// Note says why, where the file name does not.
	Note string `json:"note"`
}

// unlimited is a runtime environment whose rate limiter is on — so async
// messages take the deployed path, the rate-limit write joined to the
// request's transaction — but never limits: a RATE_LIMITED answer would hide
// the answer under test.
var unlimited = map[string]string{config.EnvRateLimit: "100000"}

// leakMarkers are texts that only internals would put in an error message.
var leakMarkers = []string{"dynamodb", "goroutine", "panic", ".go:", "exception", "json:", "invalid character",
	"runtime error", "arn:", "127.0.0.1", "http://", "sqs", "stack"}

// loadFrames reads the corpus expectations and checks that every file in
// framesDir has exactly one.
func loadFrames(t *testing.T) []frameCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(framesDir, "expectations.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []frameCase
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatalf("expectations.json: %v", err)
	}
	entries, err := os.ReadDir(framesDir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		if e.Name() != "expectations.json" {
			files = append(files, e.Name())
		}
	}
	var listed []string
	for _, c := range cases {
		listed = append(listed, c.File)
	}
	slices.Sort(listed)
	if !slices.Equal(files, listed) {
		t.Fatalf("expectations.json lists %d files, %s holds %d: every frame needs one expectation", len(listed), framesDir, len(files))
	}
	return cases
}

// TestAdversarialFrames sends every frame of the corpus over a real WebSocket
// connection and proves: each gets an error frame with the expected code, a
// message saying what is wrong that leaks no internals, the frame's id when
// it had a readable one, and no data; nothing is stored for the tenant; and
// the connection still answers a ping. Binary frames and frames over the
// message limit end the connection instead (1003, 1009), as API Gateway does;
// a new connection then answers the ping.
func TestAdversarialFrames(t *testing.T) {
	cases := loadFrames(t)
	if len(cases) < 50 {
		t.Fatalf("the corpus has %d frames, fewer than 50", len(cases))
	}
	rt := localtest.Start(t, local.Options{Env: unlimited})
	tenant := localtest.Tenant("frames")
	token, err := local.Token(local.DevJWTSecret, tenant, "mallory", []string{"echo", "delay"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	w := dialWire(t, rt, token)
	baseline := settledFootprint(t, ctx, rt, tenant, footprint{})

	o := outcome{Group: groupInput, Scenario: "adversarial frames", Size: fmt.Sprintf("%d frames", len(cases))}
	codes := map[string]int{}
	parent := t
	for i, fc := range cases {
		ok := t.Run(fc.File, func(t *testing.T) {
			if fc.Note != "" {
				t.Log(fc.Note)
			}
			data, err := os.ReadFile(filepath.Join(framesDir, fc.File))
			if err != nil {
				t.Fatal(err)
			}
			typ := websocket.MessageText
			if strings.HasSuffix(fc.File, ".bin") {
				typ = websocket.MessageBinary
			}
			if err := w.send(typ, data); err != nil {
				t.Fatalf("send: %v", err)
			}
			if fc.Close != 0 {
				w = expectClose(t, w, fc.Close, func() *wire { return dialWire(parent, rt, token) })
				codes[fmt.Sprintf("closed %d", fc.Close)]++
			} else {
				f, err := w.next()
				if err != nil {
					t.Fatalf("read the answer: %v", err)
				}
				checkErrorFrame(t, f, fc, tenant)
				codes[f.Error.Code]++
			}
			pingID := fmt.Sprintf("after-%d", i)
			if extra, err := w.ping(pingID); err != nil || len(extra) > 0 {
				t.Fatalf("ping after the frame: %v; unexpected frames before the pong: %v", err, extra)
			}
			if got := settledFootprint(t, ctx, rt, tenant, baseline); !sameFootprint(got, baseline) {
				t.Errorf("stored after the frame: %+v, want %+v", got, baseline)
			}
		})
		if !ok {
			o.Errors++
		}
	}
	o.Notes = frameNotes(codes)
	record(t, o)
}

// checkErrorFrame checks f answers fc: an error frame with fc's code and
// request id, a clear message without internals, and no other data.
func checkErrorFrame(t *testing.T, f wireFrame, fc frameCase, tenant string) {
	t.Helper()
	if f.Type != protocol.TypeError || f.Error == nil {
		t.Fatalf("answer %.300s, want an error frame", f.Raw)
	}
	if f.Error.Code != fc.Code || !strings.Contains(f.Error.Message, fc.Says) {
		t.Errorf("error %s %q, want %s saying %q", f.Error.Code, f.Error.Message, fc.Code, fc.Says)
	}
	if f.RequestID != fc.RequestID {
		t.Errorf("request_id %q, want %q", f.RequestID, fc.RequestID)
	}
	for name := range f.Fields {
		if name != "type" && name != "request_id" && name != "error" {
			t.Errorf("error frame carries %q: %.300s", name, f.Raw)
		}
	}
	if len(f.Error.Details) > 0 {
		t.Errorf("error frame carries details %v", f.Error.Details)
	}
	lower := strings.ToLower(f.Error.Message)
	for _, m := range append(leakMarkers, strings.ToLower(tenant)) {
		if strings.Contains(lower, m) {
			t.Errorf("error message %q leaks %q", f.Error.Message, m)
		}
	}
	if len(f.Error.Message) > 512 {
		t.Errorf("error message is %d bytes long", len(f.Error.Message))
	}
}

// expectClose checks the gateway closed w with code, and returns a new
// connection from redial in its place.
func expectClose(t *testing.T, w *wire, code websocket.StatusCode, redial func() *wire) *wire {
	t.Helper()
	f, err := w.next()
	if got := websocket.CloseStatus(err); got != code {
		t.Fatalf("got frame %.200s, error %v (close %d), want the connection closed with %d", f.Raw, err, got, code)
	}
	return redial()
}

// settledFootprint reads tenant's footprint, waiting up to 10 s for it to
// equal want (a closed connection's $disconnect runs after the close). A
// zero want reads it once.
func settledFootprint(t *testing.T, ctx context.Context, rt *local.Runtime, tenant string, want footprint) footprint {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := footprintOf(ctx, rt, tenant)
		if err != nil {
			t.Fatal(err)
		}
		if want.Connections == nil || sameFootprint(got, want) || time.Now().After(deadline) {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sameFootprint compares two footprints by counts (a reconnect changes the
// connection's id, not what is stored).
func sameFootprint(a, b footprint) bool {
	return len(a.Connections) == len(b.Connections) && a.Requests == b.Requests && a.Subscriptions == b.Subscriptions &&
		a.ConnCounter == b.ConnCounter && a.Inflight == b.Inflight
}

// frameNotes summarizes the answers by code, e.g. "VALIDATION_ERROR 97, ...".
func frameNotes(codes map[string]int) string {
	keys := make([]string, 0, len(codes))
	for k := range codes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, codes[k]))
	}
	return "answers: " + strings.Join(parts, ", ") + "; nothing stored; after each answered frame the connection still answers a ping, after each close a new one does"
}
