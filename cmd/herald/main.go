// Command herald runs a Herald server and talks to one: serve, sub, pub,
// token, bench, doctor, vet and version. Run "herald help" for the list and
// "herald help CMD" for a command's flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand. run parses args with its own flag.FlagSet (see
// parseFlags) and returns flag.ErrHelp after printing usage for -h.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, std stdio, args []string) error
}

// stdio is where a command reads and writes, so tests can run commands with
// buffers.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

var commands = map[string]*command{}

// register adds a subcommand; each command's file calls it from init.
func register(c *command) { commands[c.name] = c }

func main() {
	if vettoolMode(os.Args[1:]) {
		runAsVettool()
	}
	os.Exit(run(onSignals(os.Stderr), stdio{os.Stdin, os.Stdout, os.Stderr}, os.Args[1:]))
}

// onSignals returns a context that ends at the first SIGINT or SIGTERM,
// which starts a graceful shutdown. A second one during that shutdown ends
// the process at once with status 1, after saying so on w.
func onSignals(w io.Writer) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		cancel()
		sig := <-sigs
		fmt.Fprintf(w, "herald: %v again during the shutdown: exiting now, without finishing it\n", sig)
		os.Exit(1)
	}()
	return ctx
}

// run executes the command line args and returns the exit status.
func run(ctx context.Context, std stdio, args []string) int {
	if len(args) == 0 {
		usage(std.err)
		return 2
	}
	name, rest := args[0], args[1:]
	if name == "help" || name == "-h" || name == "--help" {
		if len(rest) == 0 {
			usage(std.out)
			return 0
		}
		name, rest = rest[0], []string{"-h"}
		std.err = std.out // help goes to stdout
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(std.err, "herald: unknown command %q\n", name)
		usage(std.err)
		return 2
	}
	err := c.run(ctx, std, rest)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	// The packages' errors start with "herald: ", which the command's own
	// prefix replaces.
	fmt.Fprintf(std.err, "herald %s: %s\n", name, strings.TrimPrefix(err.Error(), "herald: "))
	if errors.As(err, new(usageError)) {
		return 2
	}
	return 1
}

// usageError is a mistake on the command line (exit status 2).
type usageError struct{ error }

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: herald COMMAND [flags] [args]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun \"herald help COMMAND\" for a command's flags.")
}
