package bench

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Target is the server a scenario runs against.
type Target struct {
	URL   string // ws:// or wss:// URL of the WebSocket endpoint
	Token string // bearer token, optional
	// ServerPID, when not 0, is the server's process id on this machine:
	// its CPU time and RSS are read from /proc.
	ServerPID int
	// Progress receives a status line every second while a scenario runs;
	// nil prints nothing.
	Progress io.Writer
	// Compression offers permessage-deflate on every connection, as
	// browsers do; compressed messages are inflated by the readers.
	Compression bool
}

// dialAll opens n connections, at most parallel at a time, and calls setup
// on each (for example to subscribe). It stops at the first error.
func dialAll(ctx context.Context, t Target, n, parallel, readBuffer int, setup func(i int, c *Conn) error) ([]*Conn, error) {
	conns := make([]*Conn, n)
	var next, done atomic.Int64
	var first error
	var once sync.Once
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := make(chan struct{})
	go progress(t.Progress, time.Second, stop, func(time.Duration) string {
		return fmt.Sprintf("connecting: %s of %s", count(done.Load()), count(n))
	})
	defer close(stop)
	var wg sync.WaitGroup
	for range min(parallel, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				c, err := dialOne(ctx, t, readBuffer, i, setup)
				if err != nil {
					once.Do(func() { first = fmt.Errorf("connection %d: %w", i+1, err); cancel() })
					return
				}
				conns[i] = c
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if first != nil {
		closeAll(conns)
		return nil, first
	}
	return conns, nil
}

func dialOne(ctx context.Context, t Target, readBuffer, i int, setup func(int, *Conn) error) (*Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, t, readBuffer)
	if err != nil {
		return nil, err
	}
	if setup != nil {
		if err := setup(i, c); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

func closeAll(conns []*Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// check verifies, when ServerPID is set, that /proc can be read for it and
// that it is the process listening on URL's port.
func (t Target) check() error {
	if t.ServerPID == 0 {
		return nil
	}
	if _, err := ReadProc(t.ServerPID); err != nil {
		return fmt.Errorf("server pid: %w", err)
	}
	return checkListens(t.ServerPID, t.URL)
}
