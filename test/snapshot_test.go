package test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	streamer "github.com/streamer-dev/streamer/constructs"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestSnapshot compares the synthesized template, asset hashes masked, with
// testdata/streamer-stack.json; go test ./test -run Snapshot -update rewrites it.
func TestSnapshot(t *testing.T) {
	defer failOnPanic(t)
	s := streamerStack(t)
	got, err := streamer.TemplateSnapshot(s.stack.Stack)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "streamer-stack.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("template differs from %s; review the change, then run go test ./test -run Snapshot -update", golden)
	}
}

func TestMaskAssetHashes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give string
		want string
	}{
		{
			give: `{"S3Key":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.zip"}`,
			want: `{"S3Key":"` + streamer.AssetHashPlaceholder + `.zip"}`,
		},
		{give: `{"Ref":"StreamerRequestsB53A94EA"}`, want: `{"Ref":"StreamerRequestsB53A94EA"}`},
	}
	for _, tt := range tests {
		if got := string(streamer.MaskAssetHashes([]byte(tt.give))); got != tt.want {
			t.Errorf("MaskAssetHashes(%s) = %s, want %s", tt.give, got, tt.want)
		}
	}
}
