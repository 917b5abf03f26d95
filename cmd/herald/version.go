package main

import (
	"context"
	"fmt"

	"github.com/heraldhq/herald"
)

func init() {
	register(&command{name: "version", summary: "print the version", run: func(ctx context.Context, std stdio, args []string) error {
		fs := newFlagSet("version", "", std)
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		_, err := fmt.Fprintf(std.out, "herald %s\n", herald.Version)
		return err
	}})
}
