package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/CONFIG.md from the code (go generate ./cmd/herald)")

// TestConfigReference fails while docs/CONFIG.md differs from what the code
// generates, so a flag or config key added without regenerating it fails.
func TestConfigReference(t *testing.T) {
	var want bytes.Buffer
	if err := writeConfigReference(&want); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(configRefPath, want.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	have, err := os.ReadFile(configRefPath)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(have, want.Bytes()) {
		return
	}
	hl, wl := strings.Split(string(have), "\n"), strings.Split(want.String(), "\n")
	for i := range max(len(hl), len(wl)) {
		var h, w string
		if i < len(hl) {
			h = hl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if h != w {
			t.Fatalf("docs/CONFIG.md differs from the flags in the code; run go generate ./cmd/herald.\nline %d is\n\t%s\nwant\n\t%s", i+1, h, w)
		}
	}
}

// TestConfigReferenceReadsTheFlagSets registers a command the reference
// has never seen: its flags, environment variables and config keys appear
// without anything else to change.
func TestConfigReferenceReadsTheFlagSets(t *testing.T) {
	register(&command{name: "zz-test", summary: "a command of this test", run: func(ctx context.Context, std stdio, args []string) error {
		fs := newFlagSet("zz-test", "[flags]", std)
		fs.String("config", "", "YAML file")
		fs.Duration("fsync-interval", 0, "how often to sync")
		return parseFlags(fs, args)
	}})
	defer delete(commands, "zz-test")
	var b bytes.Buffer
	if err := writeConfigReference(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"## herald zz-test\n\na command of this test.\n\n```\nherald zz-test [flags]\n```",
		"| `--fsync-interval` | `HERALD_FSYNC_INTERVAL` | duration | `0s` | how often to sync |",
		"every flag but `config` is a key of the same name (`fsync-interval: ...`)",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the reference lacks %q", want)
		}
	}
}

// TestConfigReferenceNeedsSectionDocs refuses a config file section whose
// keys are not documented.
func TestConfigReferenceNeedsSectionDocs(t *testing.T) {
	configSections["zz-test"] = true
	defer delete(configSections, "zz-test")
	var b bytes.Buffer
	if err := writeConfigReference(&b); err == nil || !strings.Contains(err.Error(), `"zz-test" is not documented`) {
		t.Fatalf("an undocumented section: %v", err)
	}
}
