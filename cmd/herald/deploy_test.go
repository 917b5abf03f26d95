package main

import (
	"bufio"
	"flag"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/heraldhq/herald"
)

// TestDeployConfigIsAccepted reads deploy/herald.yaml as herald serve does:
// every key is a flag or a section serve knows.
func TestDeployConfigIsAccepted(t *testing.T) {
	var c serveConfig
	fs := serveFlags(stdio{out: io.Discard, err: io.Discard}, &c)
	if err := parseFlags(fs, []string{"--config", "../../deploy/herald.yaml"}); err != nil {
		t.Fatal(err)
	}
	if err := c.finish(fs); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.opts.AllowedHosts, []string{"rt.example.com"}) || c.metricsAddr != "127.0.0.1:9090" {
		t.Errorf("allowed hosts %q, metrics addr %q: not the file's", c.opts.AllowedHosts, c.metricsAddr)
	}
	if c.opts.Namespaces["news"].Publish != herald.AccessNone || c.namespaceHistory["chat"].Size != 100 {
		t.Errorf("namespaces %v, history %v: not the file's", c.opts.Namespaces, c.namespaceHistory)
	}
}

// TestDeployFilesNameRealFlags checks that the flags on the systemd unit's
// ExecStart and the HERALD_* variables the unit and the Containerfile set
// are herald serve's, so renaming a flag cannot leave them behind.
func TestDeployFilesNameRealFlags(t *testing.T) {
	var c serveConfig
	fs := serveFlags(stdio{out: io.Discard, err: io.Discard}, &c)
	envs := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { envs[envName(f.Name)] = true })
	envRef := regexp.MustCompile(`\bHERALD_[A-Z_]+\b`)
	for _, file := range []string{"../../deploy/herald.service", "../../deploy/Containerfile"} {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		lines := bufio.NewScanner(f)
		for lines.Scan() {
			line := lines.Text()
			for _, name := range envRef.FindAllString(line, -1) {
				if !envs[name] {
					t.Errorf("%s: %s is no flag of herald serve: %s", file, name, line)
				}
			}
			args, ok := strings.CutPrefix(line, "ExecStart=/usr/local/bin/herald serve ")
			if !ok {
				continue
			}
			if err := fs.Parse(strings.Fields(args)); err != nil {
				t.Errorf("%s: %v", file, err)
			}
		}
	}
}
