package e2e

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/streamer-dev/streamer/local/localtest"
)

// chromium is Debian's package, which scripts/deps.sh installs.
const chromium = "/usr/bin/chromium"

// TestPageInChromium runs test/browser/page.test.mjs (playwright-core) against
// the page of a local runtime. Set STREAMER_SCREENSHOT_DIR to keep the
// screenshot.
func TestPageInChromium(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("%s is missing: run make deps", chromium)
	}
	if _, err := os.Stat(filepath.Join(root, "node_modules/playwright-core")); err != nil {
		t.Skip("node_modules/playwright-core is missing: run make deps")
	}
	rt := localtest.Shared(t)
	page := rt.URL() + "?token=" + url.QueryEscape(localtest.Token(t, rt, "e2e-browser", "alice"))
	shots := os.Getenv("STREAMER_SCREENSHOT_DIR")
	if shots == "" {
		shots = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(root, "test/browser/page.test.mjs"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(),
		"STREAMER_PAGE_URL="+page,
		"STREAMER_SCREENSHOT="+filepath.Join(shots, "page.png"),
		"STREAMER_USER_DATA_DIR="+t.TempDir(),
		"STREAMER_CHROMIUM="+chromium,
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("page test: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(shots, "page.png")); err != nil {
		t.Errorf("no screenshot: %v", err)
	}
}
