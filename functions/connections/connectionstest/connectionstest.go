// Package connectionstest serves the @connections API over HTTP for tests: it
// records every message posted to a connection and answers 410 Gone for
// connections marked gone.
package connectionstest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Server is a recording @connections endpoint. Its URL is the endpoint to give
// connections.New.
type Server struct {
	URL string

	mu      sync.Mutex
	posts   map[string][][]byte
	gone    map[string]bool
	deleted []string
	auth    []string
}

// NewServer starts a server that stops when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{posts: map[string][][]byte{}, gone: map[string]bool{}}
	hs := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(hs.Close)
	s.URL = hs.URL + "/test"
	return s
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, "/test/@connections/")
	if !ok || id == "" {
		http.NotFound(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth = append(s.auth, r.Header.Get("Authorization"))
	if s.gone[id] {
		w.WriteHeader(http.StatusGone)
		return
	}
	switch r.Method {
	case http.MethodPost:
		s.posts[id] = append(s.posts[id], body)
	case http.MethodDelete:
		s.deleted = append(s.deleted, id)
		s.gone[id] = true
	case http.MethodGet:
		_ = json.NewEncoder(w).Encode(map[string]any{
			"connectedAt":  "2026-12-04T12:00:00.000Z",
			"lastActiveAt": "2026-12-04T12:01:00.000Z",
			"identity":     map[string]string{"sourceIp": "192.0.2.1", "userAgent": "test"},
		})
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// SetGone makes every later call for the connection answer 410 Gone.
func (s *Server) SetGone(connectionID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gone[connectionID] = true
}

// Posts returns the messages posted to the connection, in order.
func (s *Server) Posts(connectionID string) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.posts[connectionID]...)
}

// Frames decodes the messages posted to the connection as JSON objects.
func (s *Server) Frames(t testing.TB, connectionID string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, p := range s.Posts(connectionID) {
		var f map[string]any
		if err := json.Unmarshal(p, &f); err != nil {
			t.Fatalf("posted message %q is not a JSON object: %v", p, err)
		}
		out = append(out, f)
	}
	return out
}

// Deleted returns the connections closed with DELETE.
func (s *Server) Deleted() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.deleted...)
}

// Authorizations returns the Authorization header of every call, in order.
func (s *Server) Authorizations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.auth...)
}
