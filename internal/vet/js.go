package vet

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

//go:embed vet.mjs
var script []byte

// Finding is one JavaScript or TypeScript finding.
type Finding struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Col     int    `json:"col"`
	ID      string `json:"id"`
	Message string `json:"message"`
}

func (f Finding) String() string {
	return fmt.Sprintf("%s:%d:%d: %s", f.File, f.Line, f.Col, f.Message)
}

// ErrNoNode and ErrNoTypeScript say why JavaScript files were skipped.
var (
	ErrNoNode       = errors.New("node is not installed (Node.js 20+ is needed to check JavaScript and TypeScript)")
	ErrNoTypeScript = errors.New("the typescript package was not found (run npm ci in clients/js, or set HERALD_VET_TYPESCRIPT to a typescript package directory)")
)

// JSFiles lists the .js, .mjs, .cjs, .ts, .mts and .tsx files under root
// (a file or a directory), skipping node_modules, dist, test, testdata and
// hidden directories, .d.ts files and *.test.* files (test peers are
// minimal or hostile on purpose).
func JSFiles(root string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			n := d.Name()
			if p != root && (n == "node_modules" || n == "dist" || n == "testdata" || n == "test" || n == "tests" || strings.HasPrefix(n, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(p) {
		case ".js", ".mjs", ".cjs", ".ts", ".mts", ".tsx":
			if !strings.HasSuffix(p, ".d.ts") && !strings.Contains(filepath.Base(p), ".test.") {
				out = append(out, p)
			}
		}
		return nil
	})
	return out, err
}

// FindTypeScript returns the directory of the typescript package: the
// HERALD_VET_TYPESCRIPT environment variable, or node_modules/typescript or
// clients/js/node_modules/typescript in dir or one of its parents.
func FindTypeScript(dir string) (string, error) {
	if d := os.Getenv("HERALD_VET_TYPESCRIPT"); d != "" {
		return d, nil
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		for _, c := range []string{"node_modules/typescript", "clients/js/node_modules/typescript"} {
			p := filepath.Join(dir, c)
			if _, err := os.Stat(filepath.Join(p, "dist/api/sync/api.js")); err == nil {
				return p, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ErrNoTypeScript
		}
		dir = parent
	}
}

// CheckJS runs the Node checker over files with the typescript package in
// tsDir and returns its findings sorted by file and line.
func CheckJS(ctx context.Context, tsDir string, files []string) ([]Finding, error) {
	if len(files) == 0 {
		return nil, nil
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, ErrNoNode
	}
	tmp, err := os.MkdirTemp("", "herald-vet")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	sp := filepath.Join(tmp, "vet.mjs")
	if err := os.WriteFile(sp, script, 0o600); err != nil {
		return nil, err
	}
	abs := make([]string, len(files))
	for i, f := range files {
		if abs[i], err = filepath.Abs(f); err != nil {
			return nil, err
		}
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, node, append([]string{sp, tsDir}, abs...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("herald: the JavaScript checker failed: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var fs []Finding
	if err := json.Unmarshal(stdout.Bytes(), &fs); err != nil {
		return nil, fmt.Errorf("herald: the JavaScript checker's output: %w", err)
	}
	rel := map[string]string{}
	for i, a := range abs {
		rel[a] = files[i]
	}
	for i := range fs {
		fs[i].File = rel[fs[i].File]
	}
	sort.SliceStable(fs, func(i, j int) bool {
		if fs[i].File != fs[j].File {
			return fs[i].File < fs[j].File
		}
		return fs[i].Line < fs[j].Line
	})
	return fs, nil
}
