package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/heraldhq/herald/auth"
)

func init() {
	register(&command{name: "token", summary: "print a signed HS256 token, for development", run: runToken})
}

func runToken(ctx context.Context, std stdio, args []string) error {
	fs := newFlagSet("token", "--secret S --sub USER [--channels 'chat:*,news'] [--ttl 1h]", std)
	secret := fs.String("secret", "", "HS256 secret (the server's --jwt-secret)")
	sub := fs.String("sub", "", "user (claim sub)")
	channels := fs.String("channels", "", "comma-separated channel patterns the token allows (claim channels); empty: namespace rules decide")
	ttl := fs.Duration("ttl", time.Hour, "validity")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *secret == "" || *sub == "" {
		return usageError{errors.New("--secret and --sub are required")}
	}
	var list []string
	if *channels != "" {
		list = strings.Split(*channels, ",")
	}
	tok, err := auth.SignHS256([]byte(*secret), *sub, list, *ttl)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(std.out, tok)
	return err
}
