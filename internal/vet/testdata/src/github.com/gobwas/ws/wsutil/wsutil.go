// Package wsutil is a stub for the tests.
package wsutil

import (
	"io"

	"github.com/gobwas/ws"
)

func ReadClientData(rw io.ReadWriter) ([]byte, ws.OpCode, error)   { return nil, 0, nil }
func WriteServerMessage(w io.Writer, op ws.OpCode, p []byte) error { return nil }
