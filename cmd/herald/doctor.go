package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/doctor"
)

func init() {
	register(&command{name: "doctor", summary: "check a WebSocket endpoint's heartbeat, validation, close and reconnection", run: runDoctor})
}

type doctorConfig struct {
	url          string
	opts         doctor.Options
	subprotocols string
	token        string
	insecure     bool
	caFile       string
	json         bool
}

func doctorFlags(std stdio, c *doctorConfig) *flag.FlagSet {
	fs := newFlagSet("doctor", "URL [flags]", std)
	fs.String("config", "", "YAML file with flag values (keys named like the flags)")
	fs.DurationVar(&c.opts.Duration, "duration", 90*time.Second, "how long to watch connections; the heartbeat and dead-peer checks wait up to all of it, and the validation probes run after it")
	fs.BoolVar(&c.json, "json", false, "print the report as JSON")
	fs.IntVar(&c.opts.Reconnect, "reconnect", 0, "drop the connection and reconnect this many times (0: skip the reconnection check)")
	fs.StringVar(&c.subprotocols, "subprotocol", doctor.Subprotocol, "comma-separated subprotocols to offer (empty: offer none)")
	fs.StringVar(&c.token, "token", "", "bearer token sent with the upgrade (Authorization header)")
	fs.DurationVar(&c.opts.IdleTimeout, "idle-timeout", 60*time.Second, "proxy idle timeout the ping interval is judged against")
	fs.DurationVar(&c.opts.Timeout, "timeout", 5*time.Second, "how long to wait for each single answer: upgrade, reply, pong, close")
	fs.BoolVar(&c.insecure, "insecure", false, "wss: do not verify the server's certificate")
	fs.StringVar(&c.caFile, "ca-file", "", "wss: PEM file of the CA that signed the server's certificate")
	return fs
}

func runDoctor(ctx context.Context, std stdio, args []string) error {
	var c doctorConfig
	if err := parseDoctorArgs(std, &c, args); err != nil {
		return err
	}
	if !c.json {
		fmt.Fprintf(std.out, "herald doctor %s, watching for up to %s\n", c.url, c.opts.Duration)
	}
	rep := doctor.Run(ctx, c.url, &c.opts)
	if c.json {
		enc := json.NewEncoder(std.out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		writeReport(std.out, rep)
	}
	if err := ctx.Err(); err != nil {
		return errors.New("interrupted")
	}
	if n := rep.Count(doctor.Fail); n > 0 {
		return fmt.Errorf("%d of %d checks failed", n, len(rep.Checks))
	}
	return nil
}

// parseDoctorArgs accepts the URL before or after the flags.
func parseDoctorArgs(std stdio, c *doctorConfig, args []string) error {
	fs := doctorFlags(std, c)
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		c.url, args = args[0], args[1:]
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	rest := fs.Args()
	if c.url == "" && len(rest) > 0 {
		c.url, rest = rest[0], rest[1:]
	}
	switch {
	case c.url == "":
		return usageError{errors.New("missing URL, e.g. herald doctor ws://127.0.0.1:8080/ws")}
	case len(rest) > 0:
		return usageError{fmt.Errorf("unexpected arguments %q", rest)}
	case c.opts.Duration <= 0:
		return usageError{errors.New("--duration must be positive")}
	case c.opts.Reconnect < 0:
		return usageError{errors.New("--reconnect must not be negative")}
	}
	u, err := wsURL(c.url)
	if err != nil {
		return usageError{err}
	}
	c.url = u
	c.opts.Subprotocols = []string{}
	for p := range strings.SplitSeq(c.subprotocols, ",") {
		if p = strings.TrimSpace(p); p != "" {
			c.opts.Subprotocols = append(c.opts.Subprotocols, p)
		}
	}
	if c.token != "" {
		c.opts.Header = http.Header{"Authorization": {"Bearer " + c.token}}
	}
	c.opts.TLSConfig, err = tlsConfig(c.insecure, c.caFile)
	return err
}

// wsURL checks a ws:// or wss:// URL; http:// and https:// are taken to mean
// the WebSocket on the same address.
func wsURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	case "ws", "wss":
	default:
		return "", fmt.Errorf("URL %q: want ws:// or wss://", raw)
	}
	if u.Host == "" {
		return "", fmt.Errorf("URL %q has no host", raw)
	}
	return u.String(), nil
}

func tlsConfig(insecure bool, caFile string) (*tls.Config, error) {
	if !insecure && caFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{InsecureSkipVerify: insecure}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, usageError{fmt.Errorf("--ca-file: %w", err)}
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, usageError{fmt.Errorf("--ca-file %s: no PEM certificate in it", caFile)}
		}
	}
	return cfg, nil
}

// writeReport prints one line per check, its hint under it, and a tally.
// The status column widens only when a check was not concluded.
func writeReport(w io.Writer, rep doctor.Report) {
	width := 4
	if rep.Count(doctor.Inconclusive) > 0 {
		width = len(doctor.Inconclusive)
	}
	for _, c := range rep.Checks {
		fmt.Fprintf(w, "%-*s  %-10s  %s\n", width, strings.ToUpper(string(c.Status)), c.Name, c.Summary)
		if c.Hint != "" {
			fmt.Fprintf(w, "%*s  %-10s  hint: %s\n", width, "", "", c.Hint)
		}
	}
	kind := "not a Herald endpoint; "
	switch {
	case rep.Herald:
		kind = "Herald endpoint; "
	case len(rep.Checks) > 0 && rep.Checks[0].Status == doctor.Fail:
		kind = ""
	}
	elapsed := time.Duration(rep.ElapsedMS * float64(time.Millisecond))
	fmt.Fprintf(w, "%s%d passed, %d warnings, %d failed, %d not concluded, %d skipped in %s\n", kind,
		rep.Count(doctor.Pass), rep.Count(doctor.Warn), rep.Count(doctor.Fail), rep.Count(doctor.Inconclusive),
		rep.Count(doctor.Skip), elapsed.Round(10*time.Millisecond))
}
