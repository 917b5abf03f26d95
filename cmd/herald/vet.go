package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/tools/go/analysis/unitchecker"

	"github.com/heraldhq/herald/internal/vet"
)

func init() {
	register(&command{name: "vet", summary: "review Go and JavaScript/TypeScript code for WebSocket pitfalls (docs/VET.md)", run: runVet})
}

// vettoolMode reports whether go vet runs this binary as its -vettool: it
// asks "-V=full" and "-flags", then passes the path of a .cfg file.
func vettoolMode(args []string) bool {
	if len(args) == 0 || commands[args[0]] != nil {
		return false
	}
	return args[0] == "-V=full" || args[0] == "-flags" || strings.HasSuffix(args[len(args)-1], ".cfg")
}

// runAsVettool runs the analyzers under go vet's protocol; it exits.
func runAsVettool() { unitchecker.Main(vet.Analyzers()...) }

var errFindings = errors.New("herald: findings reported")

func runVet(ctx context.Context, std stdio, args []string) error {
	fs := newFlagSet("vet", "[packages or paths] (default ./...)", std)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	paths := fs.Args()
	if len(paths) == 0 {
		paths = []string{"./..."}
	}
	var goPkgs, jsFiles []string
	for _, p := range paths {
		root, recursive := strings.CutSuffix(p, "/...")
		if root == "." || root == "" || recursive {
			goPkgs = append(goPkgs, p)
		} else if hasGo(p) {
			goPkgs = append(goPkgs, p)
		}
		if root == "" {
			root = "."
		}
		fsFiles, err := vet.JSFiles(root)
		if err != nil {
			return usageError{err}
		}
		jsFiles = append(jsFiles, fsFiles...)
	}
	found := false
	if len(goPkgs) > 0 {
		f, err := vetGo(ctx, std, goPkgs)
		if err != nil {
			return err
		}
		found = found || f
	}
	if len(jsFiles) > 0 {
		ts, err := vet.FindTypeScript(".")
		var fds []vet.Finding
		if err == nil {
			fds, err = vet.CheckJS(ctx, ts, jsFiles)
		}
		if errors.Is(err, vet.ErrNoNode) || errors.Is(err, vet.ErrNoTypeScript) {
			fmt.Fprintf(std.err, "herald vet: skipped %d JavaScript/TypeScript files (%s): %v\n", len(jsFiles), strings.Join(paths, " "), err)
		} else if err != nil {
			return err
		}
		for _, f := range fds {
			fmt.Fprintln(std.out, f)
		}
		found = found || len(fds) > 0
	}
	if found {
		return errFindings
	}
	return nil
}

// hasGo reports whether p is a .go file or a directory with .go files.
func hasGo(p string) bool {
	if strings.HasSuffix(p, ".go") {
		return true
	}
	m, _ := filepath.Glob(filepath.Join(p, "*.go"))
	return len(m) > 0
}

// vetGo runs go vet with this binary as its vettool, and reports whether it
// found something.
func vetGo(ctx context.Context, std stdio, pkgs []string) (bool, error) {
	exe, err := os.Executable()
	if err != nil {
		return false, err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintf(std.err, "herald vet: skipped the Go packages (%s): the go command is not installed\n", strings.Join(pkgs, " "))
		return false, nil
	}
	cmd := exec.CommandContext(ctx, goBin, append([]string{"vet", "-vettool=" + exe}, pkgs...)...)
	cmd.Stdout, cmd.Stderr = std.out, std.out
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return true, nil
	}
	return false, err
}
