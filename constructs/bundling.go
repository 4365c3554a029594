package streamer

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3assets"
	"github.com/aws/jsii-runtime-go"
)

// ModulePath is the import path of this Go module. Default Lambda entries are
// built inside its directory, wherever the construct is imported from.
const ModulePath = "github.com/streamer-dev/streamer"

// Default entries of the two Lambdas, relative to this module's directory.
const (
	DefaultRouterEntry    = "./functions/router"
	DefaultProcessorEntry = "./functions/processor"
)

// buildFlags are the go build arguments of every Lambda binary. They make the
// output reproducible, so equal sources give an equal asset hash.
var buildFlags = []string{"-trimpath", "-buildvcs=false", "-tags", "lambda.norpc", "-ldflags", "-s -w -buildid="}

// GoCode returns Lambda code for the Go main package in entry (a directory,
// relative to workDir or absolute), built inside the module that contains
// workDir for linux on arch ("arm64" or "amd64") into a "bootstrap" binary.
//
// The build runs locally at synth, without Docker, only for the stacks CDK
// bundles (it honours the CLI's --exclusively / bundling-stacks selection). The
// asset hash is the hash of the binary, so a change that leaves the binary
// alone causes no deployment. Builds are cached in this process and on disk
// (under os.UserCacheDir()/streamer-bundles, keyed by the Go sources of every
// package the entry imports), so an unchanged function is not rebuilt.
func GoCode(workDir, entry, arch string) awslambda.Code {
	src := entry
	if !filepath.IsAbs(src) {
		src = filepath.Join(workDir, entry)
	}
	return awslambda.Code_FromAsset(jsii.String(src), &awss3assets.AssetOptions{
		AssetHashType: awscdk.AssetHashType_OUTPUT,
		Bundling: &awscdk.BundlingOptions{
			// Never pulled: the local bundler always builds or fails loudly.
			Image: awscdk.DockerImage_FromRegistry(jsii.String("public.ecr.aws/docker/library/golang:1")),
			Local: &goBundler{workDir: workDir, entry: entry, arch: arch},
		},
	})
}

// goBundler implements awscdk.ILocalBundling with go build.
type goBundler struct {
	workDir string
	entry   string
	arch    string
}

// TryBundle builds the entry (or takes it from the cache) and copies the
// binary to outputDir/bootstrap. A failed build panics, which fails the synth
// with the compiler's message rather than falling back to Docker.
func (b *goBundler) TryBundle(outputDir *string, _ *awscdk.BundlingOptions) *bool {
	bin, err := defaultBuilds.build(b.workDir, b.entry, b.arch)
	if err == nil {
		err = copyFile(bin, filepath.Join(*outputDir, "bootstrap"), 0o755)
	}
	if err != nil {
		panic(fmt.Sprintf("streamer: bundle %s: %v", b.entry, err))
	}
	return jsii.Bool(true)
}

// buildCache memoizes builds in this process (by work dir, entry and arch) on
// top of a content-addressed cache of binaries under root.
type buildCache struct {
	root   string
	mu     sync.Mutex
	done   map[string]string
	builds int // go build runs, for tests
}

var defaultBuilds = newBuildCache(defaultCacheRoot())

func newBuildCache(root string) *buildCache {
	return &buildCache{root: root, done: map[string]string{}}
}

// defaultCacheRoot is os.UserCacheDir()/streamer-bundles, or a temp folder.
func defaultCacheRoot() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "streamer-bundles")
}

// build returns the path of the bootstrap binary for entry.
func (c *buildCache) build(workDir, entry, arch string) (string, error) {
	memo := workDir + "\x00" + entry + "\x00" + arch
	c.mu.Lock()
	defer c.mu.Unlock()
	if bin, ok := c.done[memo]; ok {
		return bin, nil
	}
	env := append(os.Environ(), "GOOS=linux", "GOARCH="+arch, "CGO_ENABLED=0")
	key, err := sourceKey(workDir, entry, arch, env)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(c.root, key, "bootstrap")
	if _, err := os.Stat(bin); err != nil {
		c.builds++
		if err := goBuild(workDir, entry, bin, env); err != nil {
			return "", err
		}
	}
	c.done[memo] = bin
	return bin, nil
}

// goBuild builds entry into a temporary file beside out, then renames it, so
// a concurrent build never sees a half-written binary.
func goBuild(workDir, entry, out string, env []string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("build cache: %w", err)
	}
	tmp := fmt.Sprintf("%s.%d.tmp", out, os.Getpid())
	args := append([]string{"build"}, buildFlags...)
	args = append(args, "-o", tmp, entry)
	if _, err := goCmd(workDir, env, args...); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("build cache: %w", err)
	}
	return nil
}

// sourceKey hashes everything that determines the binary: the Go version, the
// target, the flags, and the sources of every non-standard package the entry
// imports (for a package from the module cache, its immutable module version).
func sourceKey(workDir, entry, arch string, env []string) (string, error) {
	version, err := goCmd(workDir, env, "env", "GOVERSION", "GOFLAGS")
	if err != nil {
		return "", err
	}
	const format = `{{if not .Standard}}{{.Dir}}|{{with .Module}}{{.Path}}@{{.Version}}{{with .Replace}}=>{{.Path}}@{{.Version}}{{end}}{{end}}|{{join .GoFiles " "}} {{join .EmbedFiles " "}}{{end}}`
	args := []string{"list", "-deps", "-tags", "lambda.norpc", "-f", format, entry}
	list, err := goCmd(workDir, env, args...)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n%s\n", version, arch, strings.Join(buildFlags, " "), entry)
	sc := bufio.NewScanner(bytes.NewReader(list))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		fmt.Fprintln(h, line)
		if err := hashPackage(h, line); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashPackage adds the contents of a package's files to h, unless the package
// comes from a versioned module in the module cache, which never changes.
// line is one line of sourceKey's go list output: dir|module|files.
func hashPackage(h io.Writer, line string) error {
	dir, rest, _ := strings.Cut(line, "|")
	mod, files, _ := strings.Cut(rest, "|")
	if versioned(mod) {
		return nil
	}
	for _, name := range strings.Fields(files) {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("hash sources: %w", err)
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("hash sources: %w", err)
		}
	}
	return nil
}

// versioned reports whether mod ("path@version" or "path@version=>path@version")
// names an immutable module version rather than a local directory.
func versioned(mod string) bool {
	last := mod
	if _, repl, ok := strings.Cut(mod, "=>"); ok {
		last = repl
	}
	_, version, _ := strings.Cut(last, "@")
	return version != ""
}

// goCmd runs the go command in dir and returns its standard output.
func goCmd(dir string, env []string, args ...string) ([]byte, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go %s in %s: %w: %s", args[0], dir, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy bootstrap: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("copy bootstrap: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy bootstrap: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy bootstrap: %w", err)
	}
	return nil
}

// moduleDirs memoizes the directory of this module per working directory.
var moduleDirs sync.Map

// ModuleDir returns the directory of this module (ModulePath) as the Go
// command resolves it from cwd: the repository itself, a `replace` target, or
// the module cache. Default Lambda entries are built there.
func ModuleDir(cwd string) (string, error) {
	if dir, ok := moduleDirs.Load(cwd); ok {
		return dir.(string), nil
	}
	out, err := goCmd(cwd, os.Environ(), "list", "-m", "-f", "{{.Dir}}", ModulePath)
	if err != nil {
		return "", fmt.Errorf("find module %s: %w", ModulePath, err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("find module %s: not downloaded (run go mod download %s)", ModulePath, ModulePath)
	}
	moduleDirs.Store(cwd, dir)
	return dir, nil
}
