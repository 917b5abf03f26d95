package vet_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/vet"
)

var wantJS = regexp.MustCompile(`//\s*want\s+(.+)$`)

// TestJavaScript runs the Node checker over testdata/js and compares its
// findings with the "// want ID..." comments on the fixtures' lines.
func TestJavaScript(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	ts, err := vet.FindTypeScript(".")
	if err != nil {
		t.Fatal(err) // node is here, so typescript must be too: run npm ci in clients/js
	}
	files, err := filepath.Glob("testdata/js/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	var want []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if m := wantJS.FindStringSubmatch(line); m != nil {
				for _, id := range strings.Fields(m[1]) {
					want = append(want, fmt.Sprintf("%s:%d: %s", f, i+1, id))
				}
			}
		}
	}
	fds, err := vet.CheckJS(context.Background(), ts, files)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fds {
		got = append(got, fmt.Sprintf("%s:%d: %s", f.File, f.Line, f.ID))
	}
	slices.Sort(want)
	slices.Sort(got)
	for _, g := range got {
		if !slices.Contains(want, g) {
			t.Errorf("unexpected finding %s", g)
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("missing finding %s", w)
		}
	}
}
