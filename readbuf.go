package herald

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
)

// readBufferSize holds a burst of small frames; larger payloads are read
// straight into the message.
const readBufferSize = 4 << 10

var readBuffers = sync.Pool{New: func() any { return new([readBufferSize]byte) }}

// readBuffer reads a connection through a pooled buffer that it takes while
// the connection has something to read and returns when it is empty, so an
// idle connection holds none. Without a buffer, reads go straight to the
// connection.
type readBuffer struct {
	conn net.Conn
	dead *atomic.Bool // once set, reads fail: the connection was ended
	buf  []byte       // a pooled array, a larger copy of handshake bytes, or nil
	r, w int32
}

func (b *readBuffer) Read(p []byte) (int, error) {
	if b.dead.Load() {
		return 0, net.ErrClosed
	}
	if b.r == b.w {
		if b.buf == nil || len(p) >= len(b.buf) {
			return b.conn.Read(p)
		}
		n, err := b.conn.Read(b.buf)
		if n == 0 {
			return 0, err
		}
		b.r, b.w = 0, int32(n)
	}
	n := copy(p, b.buf[b.r:b.w])
	b.r += int32(n)
	return n, nil
}

// fill makes p, bytes that were read from the connection with the
// handshake, the first to be read.
func (b *readBuffer) fill(p []byte) {
	if len(p) > readBufferSize {
		b.buf = bytes.Clone(p) // not pooled: release drops it
	} else {
		b.acquire()
	}
	b.r, b.w = 0, int32(copy(b.buf, p))
}

// empty reports whether everything read from the connection was consumed.
func (b *readBuffer) empty() bool { return b.r == b.w }

// acquire takes a buffer from the pool, unless one holds unread bytes.
func (b *readBuffer) acquire() {
	if b.buf == nil {
		b.buf = readBuffers.Get().(*[readBufferSize]byte)[:]
	}
}

// release gives the buffer back once it is empty.
func (b *readBuffer) release() {
	if !b.empty() || b.buf == nil {
		return
	}
	if len(b.buf) == readBufferSize {
		readBuffers.Put((*[readBufferSize]byte)(b.buf))
	}
	b.buf, b.r, b.w = nil, 0, 0
}
