package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"

	"github.com/heraldhq/herald/protocol"
)

// Conn is a frame-level herald.v1 connection for load generation: one
// goroutine reads with Next, which reuses its buffers and does not allocate
// per message; any goroutine may write. It answers pings itself.
type Conn struct {
	nc      net.Conn
	br      *bufio.Reader
	hdr     []byte // header scratch for ws.ReadHeaderBuffer
	buf     []byte // the last message's payload
	fresh   bool   // the last message needed a read from the socket
	Welcome *protocol.Welcome
	Pings   atomic.Int64 // ping frames received

	// WireBytes counts the bytes of the text frames read, headers
	// included, as they came over the wire (compressed or not).
	WireBytes atomic.Int64
	inflater  inflater // for compressed messages

	wmu  sync.Mutex
	wbuf []byte
}

// errClosedByServer is returned by Next after a close frame.
var errClosedByServer = errors.New("closed by server")

// Dial opens a connection to t and waits for the server's welcome.
// readBuffer is the size of the connection's read buffer.
func Dial(ctx context.Context, t Target, readBuffer int) (*Conn, error) {
	h := http.Header{}
	if t.Token != "" {
		h.Set("Authorization", "Bearer "+t.Token)
	}
	d := ws.Dialer{Protocols: []string{protocol.Subprotocol}, Header: ws.HandshakeHeaderHTTP(h), ReadBufferSize: readBuffer}
	if t.Compression {
		d.Extensions = []httphead.Option{wsflate.Parameters{ClientMaxWindowBits: 1}.Option()}
	}
	nc, br, _, err := d.Dial(ctx, t.URL)
	if err != nil {
		return nil, err
	}
	if br == nil {
		br = bufio.NewReaderSize(nc, readBuffer)
	}
	c := &Conn{nc: nc, br: br, hdr: make([]byte, 2, ws.MaxHeaderSize-2)}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetReadDeadline(dl)
	}
	f, err := c.NextFrame()
	nc.SetReadDeadline(time.Time{})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("waiting for welcome: %w", err)
	}
	w, ok := f.(*protocol.Welcome)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("expected welcome, got %s", f.Type())
	}
	c.Welcome = w
	return c, nil
}

// Close closes the connection without a close handshake.
func (c *Conn) Close() error { return c.nc.Close() }

// Next returns the payload of the next text message; it is valid until the
// following call. Pings are answered and counted on the way.
func (c *Conn) Next() ([]byte, error) {
	buffered, consumed := c.br.Buffered(), 0
	for {
		h, err := ws.ReadHeaderBuffer(c.br, c.hdr)
		if err != nil {
			return nil, err
		}
		consumed += ws.HeaderSize(h) + int(h.Length)
		c.fresh = consumed > buffered
		if h.Length > 1<<24 {
			return nil, fmt.Errorf("frame of %d bytes", h.Length)
		}
		n := int(h.Length)
		if cap(c.buf) < n {
			c.buf = make([]byte, n, max(n, 2*cap(c.buf)))
		}
		c.buf = c.buf[:n]
		if _, err := io.ReadFull(c.br, c.buf); err != nil {
			return nil, err
		}
		switch h.OpCode {
		case ws.OpText:
			if !h.Fin {
				return nil, errors.New("fragmented message")
			}
			c.WireBytes.Add(int64(ws.HeaderSize(h) + n))
			if h.Rsv1() {
				return c.inflater.inflateShared(c.buf)
			}
			return c.buf, nil
		case ws.OpPing:
			c.Pings.Add(1)
			if err := c.write(ws.OpPong, c.buf); err != nil {
				return nil, err
			}
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(c.buf)
			return nil, fmt.Errorf("%w: %d %s", errClosedByServer, code, reason)
		}
	}
}

// Fresh reports whether the message Next returned last needed a read from
// the socket; when it did not, it arrived with the one before.
func (c *Conn) Fresh() bool { return c.fresh }

// NextFrame reads and decodes the next message, for setup and checks; the
// hot paths parse with Next.
func (c *Conn) NextFrame() (protocol.Frame, error) {
	p, err := c.Next()
	if err != nil {
		return nil, err
	}
	return protocol.Decode(p)
}

// WriteText sends payload as one masked text frame.
func (c *Conn) WriteText(payload []byte) error { return c.write(ws.OpText, payload) }

func (c *Conn) write(op ws.OpCode, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	h := ws.Header{Fin: true, OpCode: op, Length: int64(len(payload)), Masked: true}
	binaryMask(&h.Mask, rand.Uint32())
	b := appendHeader(c.wbuf[:0], h)
	n := len(b)
	b = append(b, payload...)
	ws.Cipher(b[n:], h.Mask, 0)
	c.wbuf = b
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.nc.Write(b)
	return err
}

func binaryMask(m *[4]byte, v uint32) {
	m[0], m[1], m[2], m[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

// appendHeader appends h in wire format.
func appendHeader(b []byte, h ws.Header) []byte {
	b0 := byte(h.OpCode)
	if h.Fin {
		b0 |= 0x80
	}
	var mask byte
	if h.Masked {
		mask = 0x80
	}
	switch {
	case h.Length < 126:
		b = append(b, b0, mask|byte(h.Length))
	case h.Length <= 0xffff:
		b = append(b, b0, mask|126, byte(h.Length>>8), byte(h.Length))
	default:
		b = append(b, b0, mask|127)
		for s := 56; s >= 0; s -= 8 {
			b = append(b, byte(h.Length>>s))
		}
	}
	if h.Masked {
		b = append(b, h.Mask[:]...)
	}
	return b
}

// Subscribe subscribes to channel and waits for the reply; publications
// that arrive before it are an error, so call it before publishing starts.
func (c *Conn) Subscribe(ctx context.Context, channel string) error {
	req, _ := protocol.Encode(&protocol.Subscribe{ID: 1, Channel: channel})
	if err := c.WriteText(req); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.nc.SetReadDeadline(dl)
		defer c.nc.SetReadDeadline(time.Time{})
	}
	f, err := c.NextFrame()
	switch f := f.(type) {
	case nil:
		return err
	case *protocol.Subscribed:
		return nil
	case *protocol.Error:
		return f
	default:
		return fmt.Errorf("expected subscribed, got %s", f.Type())
	}
}
