package doctor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

// maxFrameBytes bounds what the doctor reads into memory from one frame.
const maxFrameBytes = 16 << 20

// errTimeout is returned by conn.next when nothing arrived before the
// deadline.
var errTimeout = errors.New("timed out")

// frame is one control frame or one complete data message from the server,
// with the time it finished arriving.
type frame struct {
	op      ws.OpCode
	payload []byte
	at      time.Time
}

// closeCode returns the code and reason of a close frame.
func (f frame) closeCode() (int, string) {
	if len(f.payload) < 2 {
		return int(ws.StatusNoStatusRcvd), ""
	}
	code, reason := ws.ParseCloseFrameData(f.payload)
	return int(code), reason
}

// conn is a client connection at frame level. A reader goroutine reads
// frames as they arrive and timestamps them; the check that owns the conn
// consumes them with next and decides itself whether to answer pings. next
// and the write methods may be called from one goroutine at a time; Close
// from any.
type conn struct {
	ctx      context.Context
	nc       net.Conn
	protocol string
	exts     []string
	flate    bool          // permessage-deflate was negotiated
	upgraded time.Time     // when the 101 response was read
	dialTime time.Duration // TCP (and TLS) connect plus upgrade
	tcpTime  time.Duration // TCP connect only

	frames    chan frame
	err       error     // why the reader stopped; read after frames is closed
	endedAt   time.Time // when the reader stopped; read after frames is closed
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
	wmu       sync.Mutex
	wrote     time.Time // when the last frame was written; guarded by wmu
	timeout   time.Duration
}

// handshakeError is a failed upgrade, with the HTTP status when the server
// answered one.
type handshakeError struct {
	status int
	reason string
	err    error
}

func (e *handshakeError) Error() string {
	if e.status != 0 {
		return fmt.Sprintf("HTTP %d %s", e.status, e.reason)
	}
	return e.err.Error()
}

func (e *handshakeError) Unwrap() error { return e.err }

// dial connects and upgrades. offerDeflate offers permessage-deflate as
// browsers do; only the handshake check uses it.
func (d *doctor) dial(offerDeflate bool) (*conn, error) {
	c := &conn{ctx: d.ctx, timeout: d.opts.Timeout, frames: make(chan frame, 64), done: make(chan struct{})}
	var herr handshakeError
	dialer := ws.Dialer{
		Timeout:   d.opts.Timeout,
		Protocols: d.opts.Subprotocols,
		TLSConfig: d.opts.TLSConfig,
		OnStatusError: func(status int, reason []byte, _ io.Reader) {
			herr.status, herr.reason = status, string(reason)
		},
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			t := time.Now()
			nc, err := new(net.Dialer).DialContext(ctx, network, addr)
			c.tcpTime = time.Since(t)
			return nc, err
		},
	}
	if len(d.opts.Header) > 0 {
		dialer.Header = ws.HandshakeHeaderHTTP(d.opts.Header)
	}
	if offerDeflate {
		dialer.Extensions = append(dialer.Extensions, wsflate.DefaultParameters.Option())
	}
	start := time.Now()
	nc, br, hs, err := dialer.Dial(d.ctx, d.url)
	if err != nil {
		herr.err = err
		return nil, &herr
	}
	c.upgraded = time.Now()
	c.dialTime = c.upgraded.Sub(start)
	c.nc, c.protocol = nc, hs.Protocol
	for _, e := range hs.Extensions {
		ext := string(e.Name)
		e.Parameters.ForEach(func(k, v []byte) bool {
			ext += "; " + string(k)
			if len(v) > 0 {
				ext += "=" + string(v)
			}
			return true
		})
		c.exts = append(c.exts, ext)
		c.flate = c.flate || strings.EqualFold(string(e.Name), wsflate.ExtensionName)
	}
	var r io.Reader = nc
	if br != nil {
		r = io.MultiReader(br, nc)
	}
	c.wg.Add(1)
	go c.readLoop(r)
	stop := context.AfterFunc(d.ctx, c.Close)
	c.wg.Go(func() {
		<-c.done
		stop()
	})
	return c, nil
}

// Close drops the TCP connection, without a close frame, and waits for the
// conn's goroutines.
func (c *conn) Close() {
	c.closeOnce.Do(func() {
		close(c.done)
		c.nc.Close()
	})
	c.wg.Wait()
}

func (c *conn) readLoop(r io.Reader) {
	defer c.wg.Done()
	defer close(c.frames)
	br := bufio.NewReader(r)
	var (
		msg        []byte
		op         ws.OpCode
		compressed bool
	)
	for {
		h, payload, err := readFrame(br)
		if err != nil {
			c.err, c.endedAt = err, time.Now()
			return
		}
		f := frame{op: h.OpCode, payload: payload, at: time.Now()}
		if !h.OpCode.IsControl() {
			if h.OpCode != ws.OpContinuation {
				op, msg, compressed = h.OpCode, nil, h.Rsv1()
			}
			msg = append(msg, payload...)
			if !h.Fin {
				continue
			}
			f.op, f.payload = op, msg
			if compressed && c.flate {
				if f.payload, err = wsflate.DefaultHelper.Decompress(msg); err != nil {
					c.err, c.endedAt = fmt.Errorf("decompress: %w", err), time.Now()
					return
				}
			}
		}
		select {
		case c.frames <- f:
		case <-c.done:
			c.err, c.endedAt = net.ErrClosed, time.Now()
			return
		}
	}
}

func readFrame(r io.Reader) (ws.Header, []byte, error) {
	h, err := ws.ReadHeader(r)
	if err != nil {
		return h, nil, err
	}
	if h.Length > maxFrameBytes {
		return h, nil, fmt.Errorf("server sent a %d-byte frame", h.Length)
	}
	payload := make([]byte, h.Length)
	if _, err := io.ReadFull(r, payload); err != nil {
		return h, nil, err
	}
	if h.Masked {
		ws.Cipher(payload, h.Mask, 0)
	}
	return h, payload, nil
}

// next returns the next frame that arrives before deadline. It returns
// errTimeout when none did, ctx's error when the run was interrupted, and
// the read error when the connection ended.
func (c *conn) next(deadline time.Time) (frame, error) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case f, ok := <-c.frames:
		if !ok {
			if err := c.ctx.Err(); err != nil {
				return frame{}, err
			}
			return frame{}, c.err
		}
		return f, nil
	case <-t.C:
		return frame{}, errTimeout
	case <-c.ctx.Done():
		return frame{}, c.ctx.Err()
	}
}

// nextData returns the next data or close frame before deadline, answering
// pings on the way.
func (c *conn) nextData(deadline time.Time) (frame, error) {
	for {
		f, err := c.next(deadline)
		if err != nil {
			return f, err
		}
		switch f.op {
		case ws.OpPing:
			c.write(ws.OpPong, f.payload)
		case ws.OpPong:
		default:
			return f, nil
		}
	}
}

// write sends one complete, masked frame.
func (c *conn) write(op ws.OpCode, payload []byte) error {
	return c.writeFrame(ws.NewFrame(op, true, payload))
}

func (c *conn) writeFrame(f ws.Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(c.timeout))
	c.wrote = time.Now()
	return ws.WriteFrame(c.nc, ws.MaskFrame(f))
}

// lastWrite returns when the last frame was written.
func (c *conn) lastWrite() time.Time {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.wrote
}

// lostAt returns when the connection ended, once next returned an error
// for which ended is true.
func (c *conn) lostAt() time.Time { return c.endedAt }

// writeBackground sends a frame from its own goroutine, for frames the
// server may refuse to read to the end; its error is ignored.
func (c *conn) writeBackground(f ws.Frame) {
	c.wg.Go(func() { c.writeFrame(f) })
}

// describeEnd says in words how a connection ended, for a read error
// returned by next.
func describeEnd(err error) string {
	switch {
	case errors.Is(err, errTimeout):
		return "no answer"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection dropped without a close frame"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset without a close frame"
	}
	return "connection lost without a close frame (" + err.Error() + ")"
}

// ended reports whether err means the connection is gone (as opposed to a
// timeout or an interrupted run).
func ended(err error) bool {
	return err != nil && !errors.Is(err, errTimeout) && !errors.Is(err, context.Canceled) &&
		!errors.Is(err, context.DeadlineExceeded)
}
