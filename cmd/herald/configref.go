package main

//go:generate go test -run=^TestConfigReference$ -update

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"time"
)

// configRefPath is where the configuration reference lives, from this
// package's directory.
const configRefPath = "../../docs/CONFIG.md"

// machineDefaults replaces defaults that depend on the machine the
// reference is generated on, keyed "command flag".
var machineDefaults = map[string]string{
	"serve max-connections": "open-file limit − 256",
}

// sectionKey documents one key of a config file section.
type sectionKey struct {
	def, doc string
}

// configSectionDocs documents the config file sections (configSections):
// the Go type serve decodes each into, and each of its keys by YAML name.
// The reference refuses a section or key without an entry here.
var configSectionDocs = map[string]struct {
	command string
	intro   string
	typ     reflect.Type
	keys    map[string]sectionKey
}{
	"namespaces": {
		command: "serve",
		intro: "Rules per namespace, the part of a channel name before its first `:` " +
			"(`\"\"` names the channels without one). Namespaces not listed allow everything " +
			"and keep the global history. Example:\n\n" +
			"```yaml\nnamespaces:\n  chat: {publish: users, history-size: 100, history-ttl: 5m}\n  news: {publish: none}\n```",
		typ: reflect.TypeFor[namespaceConfig](),
		keys: map[string]sectionKey{
			"subscribe":    {"`all`", "who may subscribe: `all` (anonymous connections too), `users` (connections with a token) or `none`; a token's `channels` claim narrows it further"},
			"publish":      {"`all`", "who may publish over WebSocket: `all`, `users` or `none` (the HTTP API still may)"},
			"history-size": {"`--history-size`", "messages kept per channel of the namespace for recovery"},
			"history-ttl":  {"`--history-ttl`", "how long they are kept"},

			"hook-subscribe": {"`--hook-subscribe`", "URL of the subscribe hook for the namespace's channels"},
			"hook-publish":   {"`--hook-publish`", "URL of the publish hook for the namespace's channels"},
			"hook-rpc":       {"`--hook-rpc`", "URL of the rpc hook for the methods whose part before the first `:` names the namespace"},
			"presence":       {"`--presence`", "keep presence: who is subscribed to each channel, read with the `presence` request, `POST /api/presence` and `herald presence`"},
			"join-leave":     {"`--join-leave`", "with `presence`, send `join` and `leave` to a channel's other subscribers (not on channels of more than `--join-leave-max-members` members)"},
		},
	},
}

// writeConfigReference writes docs/CONFIG.md: every flag of every command,
// read from the flag sets the commands build, and the config file sections.
// It runs each command with -h, so it must not run alongside other
// commands in the same process.
func writeConfigReference(w io.Writer) error {
	type flagSet struct {
		synopsis string
		fs       *flag.FlagSet
	}
	sets := map[string]flagSet{}
	flagSetMade = func(name, synopsis string, fs *flag.FlagSet) { sets[name] = flagSet{synopsis, fs} }
	defer func() { flagSetMade = nil }()
	names := make([]string, 0, len(commands))
	for name, c := range commands {
		names = append(names, name)
		err := c.run(context.Background(), stdio{in: strings.NewReader(""), out: io.Discard, err: io.Discard}, []string{"-h"})
		if !errors.Is(err, flag.ErrHelp) {
			return fmt.Errorf("herald %s -h: %v, want its usage", name, err)
		}
	}
	slices.Sort(names)
	var b bytes.Buffer
	b.WriteString(configRefIntro)
	links := make([]string, len(names))
	for i, name := range names {
		links[i] = fmt.Sprintf("[`%s`](#herald-%s)", name, name)
	}
	b.WriteString(strings.Join(links, ", ") + ".\n")
	for _, name := range names {
		s, ok := sets[name]
		if !ok {
			return fmt.Errorf("herald %s made no flag set with newFlagSet", name)
		}
		usage := strings.TrimSpace("herald " + name + " " + s.synopsis)
		fmt.Fprintf(&b, "\n## herald %s\n\n%s.\n\n```\n%s\n```\n\n", name, commands[name].summary, usage)
		if err := writeFlags(&b, name, s.fs); err != nil {
			return err
		}
		if err := writeSections(&b, name); err != nil {
			return err
		}
	}
	for key := range machineDefaults {
		name, flagName, _ := strings.Cut(key, " ")
		if s, ok := sets[name]; !ok || s.fs.Lookup(flagName) == nil {
			return fmt.Errorf("machineDefaults names %q, which is no flag", key)
		}
	}
	for name := range configSections {
		if d, ok := configSectionDocs[name]; !ok || commands[d.command] == nil {
			return fmt.Errorf("config section %q is not documented in configSectionDocs", name)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

const configRefIntro = `# Configuration reference

<!-- Generated from the code by "go generate ./cmd/herald"; do not edit. -->

Every flag of every ` + "`herald`" + ` command, generated from the code that
defines them: after adding or changing a flag, run ` + "`go generate ./cmd/herald`" + `
(a test fails while this page differs from what the code generates).
` + "`herald help COMMAND`" + ` prints the same list for one command.

Where a value comes from, first found wins: the command line; the
environment variable ` + "`HERALD_<FLAG>`" + ` (the flag's name in capitals, ` + "`-`" + ` as
` + "`_`" + `); the key of the flag's name in the YAML file named by ` + "`--config`" + ` (or
` + "`HERALD_CONFIG`" + `), for the commands that have ` + "`--config`" + `; the default. A
key the command does not know is an error. Durations are written like
` + "`90s`" + ` or ` + "`1m30s`" + `; comma-separated lists may be YAML lists in the file;
booleans are ` + "`true`" + ` or ` + "`false`" + ` (` + "`--flag`" + ` alone is true). Keep secrets
(` + "`jwt-secret`" + `, ` + "`api-key`" + `) out of command lines, which other users can read.

Commands: `

// writeFlags writes the table of fs's flags and says whether the command
// reads a config file.
func writeFlags(b *bytes.Buffer, command string, fs *flag.FlagSet) error {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		b.WriteString("No flags.\n")
		return nil
	}
	b.WriteString("| flag | environment | type | default | meaning |\n|---|---|---|---|---|\n")
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		if typ == "" {
			typ = "bool"
		}
		if usage == "" && err == nil {
			err = fmt.Errorf("herald %s --%s has no usage text", command, f.Name)
		}
		def := "`" + f.DefValue + "`"
		if f.DefValue == "" {
			def = "none"
		}
		if d, ok := machineDefaults[command+" "+f.Name]; ok {
			def = d
		}
		fmt.Fprintf(b, "| `--%s` | `%s` | %s | %s | %s |\n", f.Name, envName(f.Name), typ, def, cell(usage))
	})
	if fs.Lookup("config") != nil {
		fmt.Fprintf(b, "\nIn the `--config` file, every flag but `config` is a key of the same name (`%s: ...`).\n", firstFlag(fs))
	} else {
		b.WriteString("\nNo config file: flags and the environment only.\n")
	}
	return err
}

// firstFlag names fs's first flag other than config, for an example.
func firstFlag(fs *flag.FlagSet) string {
	name := ""
	fs.VisitAll(func(f *flag.Flag) {
		if name == "" && f.Name != "config" {
			name = f.Name
		}
	})
	return name
}

// writeSections documents the config file sections command reads, field
// by field of the Go types they are decoded into.
func writeSections(b *bytes.Buffer, command string) error {
	names := make([]string, 0, len(configSections))
	for name := range configSections {
		if d, ok := configSectionDocs[name]; ok && d.command == command {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		d := configSectionDocs[name]
		fmt.Fprintf(b, "\n### The `%s` section of the config file\n\n%s\n\n", name, d.intro)
		b.WriteString("| key | type | default | meaning |\n|---|---|---|---|\n")
		seen := map[string]bool{}
		for i := range d.typ.NumField() {
			f := d.typ.Field(i)
			key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			k, ok := d.keys[key]
			if key == "" || !ok {
				return fmt.Errorf("config section %q: field %s (yaml %q) is not documented in configSectionDocs", name, f.Name, key)
			}
			seen[key] = true
			fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", key, typeName(f.Type), k.def, cell(k.doc))
		}
		for key := range d.keys {
			if !seen[key] {
				return fmt.Errorf("config section %q documents %q, which %s does not have", name, key, d.typ)
			}
		}
	}
	return nil
}

// typeName says how a section field is written in YAML.
func typeName(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[time.Duration]():
		return "duration"
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "int"
	case t.Kind() == reflect.Bool:
		return "bool"
	}
	return t.String()
}

// cell makes s fit one cell of a Markdown table.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
