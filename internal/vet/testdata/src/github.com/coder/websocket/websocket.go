// Package websocket is a stub of coder/websocket's API for the tests.
package websocket

import (
	"context"
	"net/http"
)

type Conn struct{}
type MessageType int

func Accept(w http.ResponseWriter, r *http.Request, o *AcceptOptions) (*Conn, error) { return nil, nil }

type AcceptOptions struct{ Subprotocols []string }

func Dial(ctx context.Context, u string, o any) (*Conn, *http.Response, error) { return nil, nil, nil }
func (*Conn) Read(ctx context.Context) (MessageType, []byte, error)            { return 0, nil, nil }
func (*Conn) Write(ctx context.Context, t MessageType, b []byte) error         { return nil }
func (*Conn) Ping(ctx context.Context) error                                   { return nil }
func (*Conn) CloseRead(ctx context.Context) context.Context                    { return ctx }
func (*Conn) CloseNow() error                                                  { return nil }
