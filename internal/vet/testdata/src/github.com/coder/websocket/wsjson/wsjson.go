// Package wsjson is a stub for the tests.
package wsjson

import (
	"context"

	"github.com/coder/websocket"
)

func Read(ctx context.Context, c *websocket.Conn, v any) error { return nil }
