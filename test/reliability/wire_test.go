package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/streamer-dev/streamer/functions/protocol"
	"github.com/streamer-dev/streamer/local"
)

// wireTimeout bounds every read and write of a wire connection.
const wireTimeout = 30 * time.Second

// wire is a raw WebSocket client: it sends frames exactly as given (text or
// binary, valid or not) and reads every server frame as it arrives.
type wire struct {
	ws *websocket.Conn
}

// wireFrame is any server frame, decoded loosely, with the raw text kept.
type wireFrame struct {
	Type      string              `json:"type"`
	RequestID string              `json:"request_id"`
	Error     *protocol.ErrorBody `json:"error"`
	// Fields holds every top-level field, to check a frame carries no data.
	Fields map[string]json.RawMessage `json:"-"`
	Raw    string                     `json:"-"`
}

// dialWire opens a connection to rt with token in the query string; it is
// closed when the test ends.
func dialWire(t testing.TB, rt *local.Runtime, token string) *wire {
	t.Helper()
	w, hs, err := tryDial(rt, "?token="+token, nil)
	if err != nil {
		t.Fatalf("dial (HTTP %d): %v", hs.status, err)
	}
	t.Cleanup(func() { _ = w.ws.CloseNow() })
	return w
}

// handshake is how the server answered a WebSocket handshake.
type handshake struct {
	// status is 101 on success, the refusal's status otherwise (0 when no
	// answer came).
	status int
	// body is the start of a refusal's body.
	body string
}

// tryDial opens a connection to rt with rawQuery and header, and returns the
// handshake's answer.
func tryDial(rt *local.Runtime, rawQuery string, header http.Header) (*wire, handshake, error) {
	ctx, cancel := context.WithTimeout(context.Background(), wireTimeout)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, rt.WSURL()+rawQuery, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		var hs handshake
		if resp != nil {
			hs.status = resp.StatusCode
			if resp.Body != nil {
				body, _ := io.ReadAll(resp.Body) // at most 1 KB, kept by the WebSocket library
				hs.body = string(body)
			}
		}
		return nil, hs, err
	}
	ws.SetReadLimit(1 << 20)
	return &wire{ws: ws}, handshake{status: http.StatusSwitchingProtocols}, nil
}

// send writes data as one message of type typ.
func (w *wire) send(typ websocket.MessageType, data []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), wireTimeout)
	defer cancel()
	return w.ws.Write(ctx, typ, data)
}

// next reads the next frame. A closed connection yields its close status.
func (w *wire) next() (wireFrame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), wireTimeout)
	defer cancel()
	return w.read(ctx)
}

// read reads the next frame, waiting until ctx ends (which closes the
// connection). A closed connection yields its close status.
func (w *wire) read(ctx context.Context) (wireFrame, error) {
	_, data, err := w.ws.Read(ctx)
	if err != nil {
		return wireFrame{}, err
	}
	f := wireFrame{Raw: string(data)}
	if err := json.Unmarshal(data, &f); err != nil {
		return f, fmt.Errorf("frame %q: %w", data, err)
	}
	if err := json.Unmarshal(data, &f.Fields); err != nil {
		return f, fmt.Errorf("frame %q: %w", data, err)
	}
	return f, nil
}

// ping sends a ping with id and returns the frames received before its pong:
// a usable connection answers with a pong and nothing else was pending.
func (w *wire) ping(id string) ([]wireFrame, error) {
	msg, _ := json.Marshal(protocol.Message{Action: "ping", ID: id})
	if err := w.send(websocket.MessageText, msg); err != nil {
		return nil, fmt.Errorf("send ping: %w", err)
	}
	var before []wireFrame
	for {
		f, err := w.next()
		if err != nil {
			return before, fmt.Errorf("read pong: %w", err)
		}
		if f.Type == protocol.TypePong && f.RequestID == id {
			return before, nil
		}
		before = append(before, f)
	}
}

// request sends msg as a text frame and returns the next frame.
func (w *wire) request(msg protocol.Message) (wireFrame, error) {
	data, err := json.Marshal(msg)
	if err != nil {
		return wireFrame{}, err
	}
	if err := w.send(websocket.MessageText, data); err != nil {
		return wireFrame{}, fmt.Errorf("send %s: %w", msg.Action, err)
	}
	return w.next()
}

// targetOf is the payload of a built-in action naming requestID.
func targetOf(requestID string) json.RawMessage {
	data, _ := json.Marshal(protocol.Target{RequestID: requestID})
	return data
}
