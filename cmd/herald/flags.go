package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// newFlagSet returns a FlagSet for a command whose usage line is synopsis.
// It prints usage and flag defaults to std.err.
func newFlagSet(name, synopsis string, std stdio) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	if flagSetMade != nil {
		flagSetMade(name, synopsis, fs)
	}
	fs.SetOutput(std.err)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: herald %s %s\n\nEvery flag also reads HERALD_<FLAG> from the environment and\nthe key of the same name from --config; flags win over the\nenvironment, the environment over the file.\n\nflags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// flagSetMade, when set, is told of every flag set newFlagSet makes; the
// configuration reference (configref.go) reads the commands' flags with it.
var flagSetMade func(name, synopsis string, fs *flag.FlagSet)

// parseFlags parses args, then fills every flag not given on the command
// line from the environment (--ping-interval <- HERALD_PING_INTERVAL) and
// then from the YAML config file named by --config or HERALD_CONFIG, when
// the flag set has a "config" flag.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err}
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if v, ok := os.LookupEnv(envName(f.Name)); ok && !given[f.Name] && err == nil {
			if e := fs.Set(f.Name, v); e != nil {
				err = usageError{fmt.Errorf("%s: %w", envName(f.Name), e)}
			}
			given[f.Name] = true
		}
	})
	if err != nil {
		return err
	}
	cf := fs.Lookup("config")
	if cf == nil || cf.Value.String() == "" {
		return nil
	}
	return applyConfig(fs, cf.Value.String(), given)
}

// configSections are config file keys that hold structures rather than flag
// values; the commands that use them read them with readConfigSection.
var configSections = map[string]bool{"namespaces": true}

// readConfigSection decodes the config file's key into v; a missing file
// name or key leaves v alone.
func readConfigSection(path, key string, v any) error {
	if path == "" {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var doc map[string]yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	node, ok := doc[key]
	if !ok {
		return nil
	}
	if err := node.Decode(v); err != nil {
		return fmt.Errorf("config %s: %s: %w", path, key, err)
	}
	return nil
}

func envName(flagName string) string {
	return "HERALD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyConfig sets flags not yet given from the YAML file's top-level keys,
// named like the flags. An unknown key is an error, so typos do not pass
// silently.
func applyConfig(fs *flag.FlagSet, path string, given map[string]bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(data, &values); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	for key, v := range values {
		if configSections[key] {
			continue
		}
		if fs.Lookup(key) == nil || key == "config" {
			return fmt.Errorf("config %s: unknown key %q", path, key)
		}
		if given[key] {
			continue
		}
		s := fmt.Sprint(v)
		if list, ok := v.([]any); ok {
			parts := make([]string, len(list))
			for i, x := range list {
				parts[i] = fmt.Sprint(x)
			}
			s = strings.Join(parts, ",")
		}
		if err := fs.Set(key, s); err != nil {
			return fmt.Errorf("config %s: %s: %w", path, key, err)
		}
	}
	return nil
}
