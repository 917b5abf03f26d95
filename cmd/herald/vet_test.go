package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVetAsVettool builds herald and runs it both ways over a package with
// a gorilla-free finding (json error ignored in a package importing
// gobwas/ws) and checks that each reports it, and that a missing Node makes
// "herald vet" say what it skipped.
func TestVetAsVettool(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "herald")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	pkg := filepath.Join("testdata", "vetpkg")
	out, err := exec.Command("go", "vet", "-vettool="+bin, "./"+pkg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "ws-validate: decoding error ignored") {
		t.Fatalf("go vet -vettool: err %v, output:\n%s", err, out)
	}
	cmd := exec.Command(bin, "vet", "./"+pkg)
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "vet.go:13") || !strings.Contains(string(out), "ws-validate") {
		t.Fatalf("herald vet: err %v, output:\n%s", err, out)
	}

	// Without node on the PATH, the JavaScript files are skipped, loudly.
	goDir := filepath.Dir(must(exec.LookPath("go")))
	var stderr bytes.Buffer
	cmd = exec.CommandContext(context.Background(), bin, "vet", "./"+filepath.Join(pkg, "web"))
	cmd.Env = append(os.Environ(), "PATH="+goDir)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("herald vet ./web without node: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "skipped 1 JavaScript/TypeScript files") || !strings.Contains(stderr.String(), "node is not installed") {
		t.Fatalf("no skip notice: %q", stderr.String())
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
