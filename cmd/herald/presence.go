package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/heraldhq/herald/protocol"
)

func init() {
	register(&command{name: "presence", summary: "print who is subscribed to a channel, then the counts", run: runPresence})
}

// presenceTimeout bounds the whole question: presence is one request.
var presenceTimeout = 20 * time.Second

func runPresence(ctx context.Context, std stdio, args []string) error {
	var cf clientFlags
	fs := newFlagSet("presence", "[--url URL] [--token T] [--ca-file PATH] CHANNEL\n\nPrints the members as JSON lines, then {\"clients\",\"users\"} (and \"truncated\":true\nwhen the server listed only 1,000 of them).", std)
	cf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("want one CHANNEL")}
	}
	ctx, cancel := context.WithTimeout(ctx, presenceTimeout)
	defer cancel()
	p, err := askPresence(ctx, cf, fs.Arg(0))
	if err != nil {
		return err
	}
	return printPresence(std.out, p)
}

// askPresence connects, asks for channel's presence and returns the answer.
func askPresence(ctx context.Context, cf clientFlags, channel string) (*protocol.Present, error) {
	cfg, err := tlsConfig(false, cf.caFile)
	if err != nil {
		return nil, err
	}
	d := ws.Dialer{Protocols: []string{protocol.Subprotocol}, TLSConfig: cfg}
	if cf.token != "" {
		d.Header = ws.HandshakeHeaderHTTP(http.Header{"Authorization": {"Bearer " + cf.token}})
	}
	conn, br, _, err := d.Dial(ctx, cf.url)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", cf.url, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn)
	}
	rw := struct {
		io.Reader
		io.Writer
	}{r, conn}
	req, _ := protocol.Encode(&protocol.Presence{ID: 1, Channel: channel})
	if err := wsutil.WriteClientText(conn, req); err != nil {
		return nil, err
	}
	for {
		data, err := wsutil.ReadServerText(rw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cf.url, err)
		}
		f, err := protocol.Decode(data)
		if err != nil {
			continue // a frame of a later protocol version
		}
		switch f := f.(type) {
		case *protocol.Present:
			return f, nil
		case *protocol.Error:
			if f.Code == protocol.CodeUnauthorized && cf.token == "" {
				return nil, fmt.Errorf("%s needs a token: pass one with --token or HERALD_TOKEN (%s)", cf.url, f.Message)
			}
			return nil, fmt.Errorf("%s: %s", f.Code, f.Message)
		}
	}
}

// printPresence writes the members as JSON lines, then the counts.
func printPresence(w io.Writer, p *protocol.Present) error {
	enc := json.NewEncoder(w)
	for _, m := range p.Members {
		if err := enc.Encode(m); err != nil {
			return err
		}
	}
	return enc.Encode(struct {
		Clients   int  `json:"clients"`
		Users     int  `json:"users"`
		Truncated bool `json:"truncated,omitempty"`
	}{p.Clients, p.Users, p.Truncated})
}
