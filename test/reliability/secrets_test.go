package reliability

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/streamer-dev/streamer/client"
	"github.com/streamer-dev/streamer/functions/actions"
	"github.com/streamer-dev/streamer/functions/demo"
	"github.com/streamer-dev/streamer/functions/protocol"
	"github.com/streamer-dev/streamer/local"
	"github.com/streamer-dev/streamer/local/localtest"
)

// secretSet is every secret of a run by what it is, to scan logs for.
type secretSet map[string]string // secret text → what it is

// add records s, described by what.
func (s secretSet) add(what, secret string) { s[secret] = what }

// addKey records an HMAC key in the forms it could be logged in: as is,
// base64 (padded or not, standard or URL alphabet) and hex.
func (s secretSet) addKey(key string) {
	s.add("JWT key", key)
	for name, enc := range map[string]*base64.Encoding{"base64": base64.StdEncoding, "base64 raw": base64.RawStdEncoding,
		"base64url": base64.URLEncoding, "base64url raw": base64.RawURLEncoding} {
		s.add("JWT key, "+name, enc.EncodeToString([]byte(key)))
	}
	s.add("JWT key, hex", hex.EncodeToString([]byte(key)))
}

// addToken records a token and its signature.
func (s secretSet) addToken(what, token string) {
	s.add(what, token)
	s.add(what+", signature", token[strings.LastIndexByte(token, '.')+1:])
}

// leaks returns, for each log line that holds a secret, what it holds.
func (s secretSet) leaks(logs string) []string {
	var out []string
	for i, line := range strings.Split(logs, "\n") {
		for secret, what := range s {
			if strings.Contains(line, secret) {
				out = append(out, fmt.Sprintf("log line %d holds the %s: %.300s", i+1, what, line))
			}
		}
	}
	return out
}

// randomText is n random bytes in hex, with a prefix: a value no log holds
// by chance.
func randomText(prefix string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// signupPayload is the sensitive sync action's input: password by its name,
// pin because the action marks it.
type signupPayload struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	PIN      string `json:"pin"`
}

// chargePayload is the sensitive async action's input: card_number is marked
// by the action; Outcome picks how the run ends.
type chargePayload struct {
	CardNumber string `json:"card_number"`
	Amount     int    `json:"amount"`
	Outcome    string `json:"outcome"` // "", retry, permanent, panic, hang
}

// leakyRegistry is the demo actions plus two actions that take sensitive
// fields and, careless as handlers can be, put them in their error texts and
// panics.
func leakyRegistry() *actions.Registry {
	reg := actions.NewRegistry()
	demo.Register(reg)
	reg.MustRegister("signup", func(_ context.Context, req actions.Request, _ actions.Reporter) (any, error) {
		var p signupPayload
		if err := json.Unmarshal(req.Payload, &p); err != nil {
			return nil, actions.Invalid("bad payload")
		}
		if p.Email == "refused@example.com" {
			return nil, fmt.Errorf("signup %s with password %q and pin %s: directory refused", p.Email, p.Password, p.PIN)
		}
		return map[string]any{"ok": true}, nil
	}, actions.Options{Mode: actions.Sync, Sensitive: []string{"pin"}})
	reg.MustRegister("charge", func(ctx context.Context, req actions.Request, progress actions.Reporter) (any, error) {
		var p chargePayload
		if err := json.Unmarshal(req.Payload, &p); err != nil {
			return nil, actions.Invalid("bad payload")
		}
		progress.Report(50, "authorising", nil)
		switch p.Outcome {
		case "retry":
			return nil, fmt.Errorf("card %s: gateway unavailable", p.CardNumber)
		case "permanent":
			return nil, actions.Permanent(fmt.Errorf("card %s declined for %d", p.CardNumber, p.Amount))
		case "panic":
			panic("charge of card " + p.CardNumber + " fell over")
		case "hang":
			<-ctx.Done()
			return nil, fmt.Errorf("card %s: %w", p.CardNumber, ctx.Err())
		}
		return map[string]any{"charged": p.Amount}, nil
	}, actions.Options{Sensitive: []string{"card_number"}, Retry: actions.RetryPolicy{MaxAttempts: 2, BaseDelay: 50 * time.Millisecond, MaxDelay: 100 * time.Millisecond}})
	return reg
}

// TestSecretsNeverLogged runs a full flow on a runtime logging at debug
// level — connections with good, bad and expired tokens and a token in the
// Authorization header; sync and async requests whose payloads carry
// sensitive fields, failing in every way (errors that quote them, retries,
// panics, cancellation); a reconnect with status and subscribe — and scans
// every line the runtime and the client logged — the client's included,
// while it fails to reconnect to the stopped runtime, and its error when a
// dial fails: none holds the JWT key (in any encoding), a token or its
// signature, or a sensitive payload value.
func TestSecretsNeverLogged(t *testing.T) {
	logs := &strings.Builder{}
	sink := &lockedWriter{w: logs}
	logger := slog.New(slog.NewJSONHandler(sink, &slog.HandlerOptions{Level: slog.LevelDebug}))
	key := randomText("key-", 32)
	secrets := secretSet{}
	secrets.addKey(key)
	rt := localtest.Start(t, local.Options{JWTSecret: key, Logger: logger, Registry: leakyRegistry()})
	tenant := localtest.Tenant("secrets")
	mint := func(what, user string, ttl time.Duration, secret string) string {
		tok, err := local.Token(secret, tenant, user, []string{"*"}, ttl)
		if err != nil {
			t.Fatal(err)
		}
		secrets.addToken(what, tok)
		return tok
	}
	good := mint("token", "alice", time.Hour, key)
	header := mint("header token", "bob", time.Hour, key)
	forged := mint("forged token", "mallory", time.Hour, randomText("other-key-", 32))
	expired := mint("expired token", "carol", -time.Minute, key)
	sensitive := func(what string) string {
		v := randomText("s-", 12)
		secrets.add(what, v)
		return v
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f := &secretsFlow{t: t, ctx: ctx, rt: rt, logger: logger, sensitive: sensitive}
	f.refused(forged, expired, "not-a-jwt")
	f.viaHeader(header)
	c := f.dial(good)
	f.syncRequests(c)
	hung := f.asyncRequests(c)
	_ = c.Close()
	c = f.dial(good)
	f.resume(c, hung)
	f.unreachable(good)
	if err := rt.Stop(); err != nil { // flushes the runtime's logs; c tries to reconnect
		t.Fatal(err)
	}
	text := func() string {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return logs.String()
	}
	for !strings.Contains(text(), "reconnect failed") && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	_ = c.Close()

	lines := strings.Count(text(), "\n")
	for _, want := range []string{"connect refused", "sync action failed", "attempt failed; retry scheduled", "request failed",
		"request cancelled", "disconnected", "reconnect failed", "dial failed"} {
		if !strings.Contains(text(), want) {
			t.Errorf("no %q in the logs: the flow did not log what it should, the scan proves less", want)
		}
	}
	leaks := secrets.leaks(text())
	record(t, outcome{Group: groupSecurity, Scenario: "Secrets never logged", Size: fmt.Sprintf("%d log lines, %d secrets", lines, len(secrets)),
		Acknowledged: f.acked, Completed: f.completed, Failed: f.failed, Cancelled: f.cancelled, Errors: len(leaks) + f.errors,
		Notes: "debug-level JSON logs of the runtime and the client scanned for the JWT key (raw, base64, hex), every token and its signature, " +
			"and the values of sensitive payload fields (by name or marked by the action) that handlers quoted in errors and panics"})
	for _, l := range leaks {
		t.Error(l)
	}
}

// secretsFlow drives the secrets test's end-to-end flow and counts what
// became of its requests.
type secretsFlow struct {
	t         *testing.T
	ctx       context.Context
	rt        *local.Runtime
	logger    *slog.Logger
	sensitive func(what string) string

	acked, completed, failed, cancelled, errors int
}

// unexpected fails the test and counts an error.
func (f *secretsFlow) unexpected(format string, args ...any) {
	f.t.Helper()
	f.errors++
	f.t.Errorf(format, args...)
}

// refused dials with each token: every handshake is refused with 401.
func (f *secretsFlow) refused(tokens ...string) {
	for _, tok := range tokens {
		_, err := client.Dial(f.ctx, f.rt.WSURL(), tok, &client.Options{Logger: f.logger})
		var he *client.HandshakeError
		if !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized {
			f.unexpected("dial with a bad token: %v, want HTTP 401", err)
		}
	}
}

// viaHeader connects with the token in an Authorization header, echoes a
// password and sends an invalid message holding one.
func (f *secretsFlow) viaHeader(token string) {
	ws, _, err := websocket.Dial(f.ctx, f.rt.WSURL(), &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		f.unexpected("dial with an Authorization header: %v", err)
		return
	}
	defer func() { _ = ws.CloseNow() }()
	echo, _ := json.Marshal(protocol.Message{Action: "echo", ID: "header-echo",
		Payload: json.RawMessage(fmt.Sprintf(`{"password":%q}`, f.sensitive("echoed password")))})
	invalid := fmt.Appendf(nil, `{"action":"signup","id":"header-invalid","password":%q}`, f.sensitive("misplaced password"))
	for _, tt := range []struct {
		msg  []byte
		want string
	}{{echo, `"success":true`}, {invalid, protocol.CodeValidation}} {
		if err := ws.Write(f.ctx, websocket.MessageText, tt.msg); err != nil {
			f.unexpected("write: %v", err)
			return
		}
		if _, data, err := ws.Read(f.ctx); err != nil || !strings.Contains(string(data), tt.want) {
			f.unexpected("answer over the header connection: %s %v, want %s", data, err, tt.want)
		}
	}
	_ = ws.Close(websocket.StatusNormalClosure, "")
}

// dial connects a client whose logs go to the test's logger.
func (f *secretsFlow) dial(token string) *client.Client {
	c, err := client.Dial(f.ctx, f.rt.WSURL(), token, &client.Options{Logger: f.logger})
	if err != nil {
		f.t.Fatalf("dial: %v", err)
	}
	return c
}

// syncRequests signs up (sensitive password and marked pin), once refused
// by a handler error that quotes both.
func (f *secretsFlow) syncRequests(c *client.Client) {
	for _, email := range []string{"ok@example.com", "refused@example.com"} {
		p := signupPayload{Email: email, Password: f.sensitive("password"), PIN: f.sensitive("pin")}
		_, err := c.Request(f.ctx, "signup", p, nil)
		if (err != nil) != (email == "refused@example.com") {
			f.unexpected("signup %s: %v", email, err)
		}
	}
}

// asyncRequests charges cards ending every way: completed, retried then
// failed, failed permanently, panicked; and starts one that hangs, returned
// for resume to cancel.
func (f *secretsFlow) asyncRequests(c *client.Client) string {
	for _, outcome := range []string{"", "retry", "permanent", "panic"} {
		card := f.sensitive("card number")
		_, err := c.Request(f.ctx, "charge", chargePayload{CardNumber: card, Amount: 42, Outcome: outcome}, nil, client.WithID("charge-"+outcome))
		f.acked++
		switch {
		case outcome == "" && err == nil:
			f.completed++
		case outcome != "" && err != nil:
			f.failed++
		default:
			f.unexpected("charge %q: %v", outcome, err)
		}
	}
	hung := "charge-hang"
	go func() { // followed until the connection closes
		_, _ = c.Request(f.ctx, "charge", chargePayload{CardNumber: f.sensitive("card number"), Amount: 1, Outcome: "hang"}, nil, client.WithID(hung))
	}()
	for {
		st, err := c.Status(f.ctx, hung)
		if err == nil && st.Status == "PROCESSING" {
			break
		}
		select {
		case <-f.ctx.Done():
			f.t.Fatalf("%s never ran: %v", hung, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	f.acked++
	return hung
}

// unreachable dials an address nothing listens on and logs the error, as
// an application would.
func (f *secretsFlow) unreachable(token string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	_, err = client.Dial(f.ctx, "ws://"+addr+"/", token, &client.Options{Logger: f.logger})
	if err == nil {
		f.unexpected("dial %s succeeded", addr)
		return
	}
	f.logger.Error("dial failed", "error", err)
}

// resume, on a new connection, asks for the hanging request's status,
// cancels it and follows it to its CANCELLED end.
func (f *secretsFlow) resume(c *client.Client, hung string) {
	if _, err := c.Status(f.ctx, hung); err != nil {
		f.unexpected("status after reconnecting: %v", err)
	}
	if err := c.Cancel(f.ctx, hung); err != nil {
		f.unexpected("cancel: %v", err)
	}
	var se *client.Error
	if _, err := c.Subscribe(f.ctx, hung, nil); errors.As(err, &se) && se.Code == protocol.CodeCancelled {
		f.cancelled++
	} else {
		f.unexpected("subscribe to the cancelled request: %v", err)
	}
}
