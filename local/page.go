package local

import (
	_ "embed"
	"net/http"
	"time"
)

//go:embed web/index.html
var page []byte

// servePage serves the web page at / and, when the runtime is started with
// DevToken, a fresh development token at /dev/token for the page to prefill.
func (rt *Runtime) servePage(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/", "/index.html":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(page)
	case "/dev/token":
		if !rt.devToken {
			http.NotFound(w, r)
			return
		}
		tok, err := rt.Token(DevTenant, DevUser, DevTokenTTL)
		if err != nil {
			http.Error(w, "cannot mint a token", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte(tok))
	default:
		http.NotFound(w, r)
	}
}

// The identity and lifetime of development tokens.
const (
	DevTenant   = "demo"
	DevUser     = "dev"
	DevTokenTTL = 24 * time.Hour
)
