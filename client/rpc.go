package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/heraldhq/herald/protocol"
)

// ErrNotConnected is returned by an RPC made while the client has no
// connection: an rpc is not queued or sent again, since the backend may
// have run it already.
var ErrNotConnected = errors.New("herald: not connected")

// RPC asks the server's rpc hook (the application's backend) to run method
// with data, marshalled as JSON (nil sends no data), and returns the
// backend's answer. It needs a connection at the time of the call
// (ErrNotConnected otherwise) and is not retried: when the connection ends
// before the answer, RPC returns an error and the backend may or may not
// have run it. An error frame comes back wrapping its *protocol.Error
// (bad_request without an rpc hook, unavailable when the backend failed).
// RPC is safe for concurrent use.
func (c *Client) RPC(ctx context.Context, method string, data any) (json.RawMessage, error) {
	if err := protocol.ValidateMethod(method); err != nil {
		return nil, fmt.Errorf("herald: rpc: %w", err)
	}
	var raw json.RawMessage
	if data != nil {
		var err error
		if raw, err = json.Marshal(data); err != nil {
			return nil, fmt.Errorf("herald: rpc %s: %w", method, err)
		}
	}
	answer := make(chan protocol.Frame, 1)
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return nil, closedError(c.err)
	case c.conn == nil:
		c.mu.Unlock()
		return nil, ErrNotConnected
	}
	id := c.newID()
	c.calls[id] = &call{reply: func(f protocol.Frame) { answer <- f }, lost: func() { answer <- nil }}
	c.conn.send(&protocol.RPC{ID: id, Method: method, Data: raw})
	c.mu.Unlock()

	select {
	case f := <-answer:
		switch f := f.(type) {
		case *protocol.Result:
			return f.Data, nil
		case *protocol.Error:
			return nil, fmt.Errorf("herald: rpc %s: %w", method, f)
		}
		return nil, fmt.Errorf("herald: rpc %s: connection lost before the answer", method)
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.calls, id)
		c.mu.Unlock()
		return nil, ctx.Err()
	}
}
