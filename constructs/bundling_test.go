package streamer

import (
	"bytes"
	"debug/elf"
	"os"
	"path/filepath"
	"testing"
)

// tinyModule writes a module with one main package and returns its directory.
func tinyModule(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":  "module example.com/tiny\n\ngo 1.26\n",
		"main.go": "package main\n\nfunc main() { " + body + " }\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func buildOK(t *testing.T, c *buildCache, dir string) string {
	t.Helper()
	bin, err := c.build(dir, dir, "arm64")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestBuildCache checks that an unchanged function is built once per process,
// found on disk by a new process, and rebuilt when its source changes.
func TestBuildCache(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := tinyModule(t, `println("v1")`)

	first := newBuildCache(root)
	bin := buildOK(t, first, dir)
	if again := buildOK(t, first, dir); again != bin || first.builds != 1 {
		t.Errorf("second build in one process: %s after %s, %d go builds; want the same binary from 1 build", again, bin, first.builds)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	if f.Machine != elf.EM_AARCH64 || f.Class != elf.ELFCLASS64 {
		t.Errorf("bootstrap is %v %v, want a 64-bit aarch64 ELF", f.Class, f.Machine)
	}
	f.Close()

	second := newBuildCache(root)
	if got := buildOK(t, second, dir); got != bin || second.builds != 0 {
		t.Errorf("new process: %s with %d go builds; want %s from the disk cache", got, second.builds, bin)
	}

	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() { println(\"v2\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	third := newBuildCache(root)
	if got := buildOK(t, third, dir); got == bin || third.builds != 1 {
		t.Errorf("changed source: %s with %d go builds; want a new binary from 1 build", got, third.builds)
	}
}

// TestBuildReproducible checks that two clean builds give identical bytes, so
// the asset hash (the hash of the output) only changes with the code.
func TestBuildReproducible(t *testing.T) {
	t.Parallel()
	dir := tinyModule(t, `println("same")`)
	a, err := os.ReadFile(buildOK(t, newBuildCache(t.TempDir()), dir))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(buildOK(t, newBuildCache(t.TempDir()), dir))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("two builds of the same source differ")
	}
}

func TestBuildErrorNamesTheEntry(t *testing.T) {
	t.Parallel()
	dir := tinyModule(t, `undefined()`)
	_, err := newBuildCache(t.TempDir()).build(dir, dir, "arm64")
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("undefined")) {
		t.Errorf("build error = %v, want the compiler's message", err)
	}
}
