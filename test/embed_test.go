package test

import (
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// embedderMain is a CDK app in another module: two constructs with nil props
// and one whose router is the embedder's own main package.
const embedderMain = `package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	streamer "github.com/streamer-dev/streamer/constructs"
)

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String("cdk.out")})
	stack := awscdk.NewStack(app, jsii.String("Embedder"), nil)
	streamer.NewStreamerConstruct(stack, jsii.String("First"), nil)
	streamer.NewStreamerConstruct(stack, jsii.String("Second"), nil)
	streamer.NewStreamerConstruct(stack, jsii.String("Custom"), &streamer.StreamerConstructProps{
		RouterEntry: jsii.String("./cmd/router"),
	})
	app.Synth(nil)
}
`

// embedderRouter registers the embedder's own action with Streamer's handler
// API, proving the entry builds in the embedder's module against this one.
const embedderRouter = `package main

import (
	"context"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/streamer-dev/streamer/functions/actions"
)

func main() {
	reg := actions.NewRegistry()
	reg.MustRegister("shout", func(ctx context.Context, req actions.Request, _ actions.Reporter) (any, error) {
		return "HELLO", nil
	}, actions.Options{})
	lambda.Start(func(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		return events.APIGatewayProxyResponse{StatusCode: 200, Body: joined(reg.Names())}, nil
	})
}

func joined(names []string) string {
	out := ""
	for _, n := range names {
		out += n + " "
	}
	return out
}
`

// TestEmbedding builds a second Go module that imports the construct through
// a replace directive, synthesizes it, and checks every function's asset.
func TestEmbedding(t *testing.T) {
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ourMod, err := os.ReadFile(filepath.Join(repo, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	// The embedder requires what this module requires, plus this module.
	_, requires, _ := strings.Cut(string(ourMod), "\nrequire")
	goMod := "module example.com/embedder\n\ngo 1.26.8\n\nrequire github.com/streamer-dev/streamer v0.0.0\n\nrequire" + requires +
		"\nreplace github.com/streamer-dev/streamer => " + repo + "\n"
	sum, err := os.ReadFile(filepath.Join(repo, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"go.mod": []byte(goMod), "go.sum": sum,
		"main.go": []byte(embedderMain), "cmd/router/main.go": []byte(embedderRouter),
	}
	for name, b := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "run", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("synth the embedder: %v\n%s", err, out)
	}

	raw, err := os.ReadFile(filepath.Join(dir, "cdk.out", "Embedder.template.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tmpl struct {
		Resources map[string]struct {
			Type       string
			Properties struct{ Code struct{ S3Key string } }
		}
	}
	if err := json.Unmarshal(raw, &tmpl); err != nil {
		t.Fatal(err)
	}
	hashes := map[string]string{} // function logical ID -> asset hash
	for id, r := range tmpl.Resources {
		if r.Type != "AWS::Lambda::Function" {
			continue
		}
		hash := strings.TrimSuffix(r.Properties.Code.S3Key, ".zip")
		hashes[id] = hash
		bootstrap := filepath.Join(dir, "cdk.out", "asset."+hash, "bootstrap")
		f, err := elf.Open(bootstrap)
		if err != nil {
			t.Errorf("%s: %v", id, err)
			continue
		}
		if f.Machine != elf.EM_AARCH64 {
			t.Errorf("%s: bootstrap is built for %v, want aarch64", id, f.Machine)
		}
		f.Close()
	}
	if len(hashes) != 6 {
		t.Fatalf("%d functions, want 6 (three constructs)", len(hashes))
	}
	byPrefix := func(prefix string) string {
		for id, h := range hashes {
			if strings.HasPrefix(id, prefix) {
				return h
			}
		}
		t.Fatalf("no function %s*", prefix)
		return ""
	}
	if byPrefix("FirstRouter") != byPrefix("SecondRouter") || byPrefix("FirstProcessor") != byPrefix("CustomProcessor") {
		t.Error("default entries give different assets in one stack")
	}
	if byPrefix("CustomRouter") == byPrefix("FirstRouter") {
		t.Error("the custom router entry was not built: its asset equals the default router's")
	}
}
