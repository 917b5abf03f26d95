package protocol

import (
	"encoding/json"
	"fmt"
)

// Frame types of remote procedure calls, answered by the application's
// backend (the server's rpc hook).
const (
	TypeRPC    = "rpc"
	TypeResult = "result"
)

// MaxMethodBytes is the longest method name an rpc may carry.
const MaxMethodBytes = 128

// RPC asks the application's backend to run Method with Data (any JSON
// value, null when absent). It is answered with Result or Error.
type RPC struct {
	ID     uint64          `json:"id,omitempty"`
	Method string          `json:"method"`
	Data   json.RawMessage `json:"data,omitempty"`
}

// Result answers an RPC with the backend's data.
type Result struct {
	ID   uint64          `json:"id,omitempty"`
	Data json.RawMessage `json:"data"`
}

func (*RPC) Type() string    { return TypeRPC }
func (*Result) Type() string { return TypeResult }

func (f *RPC) RequestID() uint64 { return f.ID }

// ValidateMethod checks an rpc method name: 1 to MaxMethodBytes bytes of
// A-Z a-z 0-9 _ - . : /. The error is meant for an error frame.
func ValidateMethod(m string) error {
	if m == "" || len(m) > MaxMethodBytes {
		return fmt.Errorf("method must be 1 to %d bytes", MaxMethodBytes)
	}
	for i := 0; i < len(m); i++ {
		if !methodByte(m[i]) {
			return fmt.Errorf("method %q: byte %q is not one of A-Z a-z 0-9 _ - . : /", m, m[i])
		}
	}
	return nil
}

func methodByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '_', '-', '.', ':', '/':
		return true
	}
	return false
}

func (f *RPC) validate() *Error {
	if err := ValidateMethod(f.Method); err != nil {
		return badRequest(0, "rpc: "+err.Error())
	}
	return nil
}
