package herald

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"sync"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"

	"github.com/heraldhq/herald/protocol"
)

// permessage-deflate (RFC 7692). The server requires server_no_context_takeover
// and client_no_context_takeover, so every message is compressed on its own:
// no connection keeps a compressor or a window, a publication is compressed
// at most once and the same compressed frame goes to every connection that
// negotiated the extension (sharedFrame). Compressors and decompressors are
// pooled, held only while a message is being compressed or inflated.

// compressionParams are what the server answers an acceptable offer with.
var compressionParams = wsflate.Parameters{ServerNoContextTakeover: true, ClientNoContextTakeover: true}

// negotiateCompression returns the upgrader's extension callback for one
// upgrade, and a report of whether it accepted permessage-deflate. An offer
// the server does not honour (any server_max_window_bits: Go's deflate
// always uses a 32 KiB window) or cannot parse is declined, and the next
// offer, if any, considered.
func negotiateCompression() (negotiate func(httphead.Option) (httphead.Option, error), accepted func() bool) {
	ext := &wsflate.Extension{Parameters: compressionParams}
	negotiate = func(opt httphead.Option) (httphead.Option, error) {
		if a, err := ext.Negotiate(opt); err == nil {
			return a, nil
		}
		return httphead.Option{}, nil
	}
	accepted = func() bool { _, ok := ext.Accepted(); return ok }
	return negotiate, accepted
}

// compressor compresses outgoing messages for the server.
type compressor struct {
	minBytes int // smaller payloads go uncompressed
	metrics  *metrics
}

// deflateTail is what a sync flush ends with; RFC 7692 §7.2.1 has the sender
// remove it and the receiver append it.
var deflateTail = []byte{0, 0, 0xff, 0xff}

type deflateBuffer struct {
	bytes.Buffer
	w *flate.Writer
}

// headerRoom is written before a compressed payload: room for its header.
var headerRoom [maxHeaderSize]byte

var deflaters = sync.Pool{New: func() any {
	b := new(deflateBuffer)
	b.w, _ = flate.NewWriter(&b.Buffer, flate.BestSpeed) // cannot fail for a valid level
	return b
}}

// frame returns a final, compressed text frame (RSV1 set) of payload.
func (c *compressor) frame(payload []byte) []byte {
	d := deflaters.Get().(*deflateBuffer)
	d.Reset()
	d.Write(headerRoom[:])
	d.w.Reset(&d.Buffer)
	d.w.Write(payload) // writes to a bytes.Buffer cannot fail
	d.w.Flush()
	b := bytes.TrimSuffix(d.Bytes(), deflateTail)
	frame := frameInPlace(ws.OpText, true, bytes.Clone(b))
	deflaters.Put(d)
	c.metrics.compressions.Inc()
	c.metrics.compressionIn.Add(float64(len(payload)))
	c.metrics.compressionOut.Add(float64(len(b) - maxHeaderSize))
	return frame
}

// outgoing returns what s is sent for plain, a final text frame: plain
// itself, or its compressed copy when s negotiated compression and the
// payload is large enough. It is for frames sent to one connection; a frame
// shared by many goes through a sharedFrame.
func (s *session) outgoing(plain []byte) []byte {
	f := sharedFrame{plain: plain}
	return f.to(s)
}

// sharedFrame is a text frame queued on many connections: the plain frame,
// and its compressed copy, built the first time a connection that
// negotiated compression needs it. It is used by one goroutine.
type sharedFrame struct {
	plain      []byte
	compressed []byte
}

// to returns the frame to queue on s.
func (f *sharedFrame) to(s *session) []byte {
	if !s.deflate {
		return f.plain
	}
	payload := f.plain[headerSize(f.plain):]
	c := &s.srv.compressor
	if len(payload) < c.minBytes {
		return f.plain
	}
	if f.compressed == nil {
		f.compressed = c.frame(payload)
	}
	return f.compressed
}

// headerSize returns the size of the header of frame, an unmasked frame.
func headerSize(frame []byte) int {
	switch frame[1] & 0x7f {
	case 126:
		return 4
	case 127:
		return 10
	}
	return 2
}

// The errors of inflate.
var (
	errInflatedTooBig = errors.New("message larger than max_message_bytes once inflated")
	errCorruptDeflate = errors.New("corrupt deflate stream")
)

// inflateTrailer ends every compressed message: the tail the sender removed,
// then an empty final block, so that the decompressor reports the end.
var inflateTrailer = []byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff}

type inflater struct {
	src bytes.Reader
	r   io.ReadCloser
}

var inflaters = sync.Pool{New: func() any {
	in := new(inflater)
	in.r = flate.NewReader(&in.src)
	return in
}}

// inflate decompresses a message's payload, producing at most limit bytes:
// a message that inflates to more fails with errInflatedTooBig as soon as
// limit+1 bytes came out, whatever the size it claims.
func inflate(compressed []byte, limit int) ([]byte, error) {
	in := inflaters.Get().(*inflater)
	defer func() {
		in.src.Reset(nil) // a pooled inflater keeps no message
		inflaters.Put(in)
	}()
	in.src.Reset(append(compressed, inflateTrailer...))
	in.r.(flate.Resetter).Reset(&in.src, nil)
	out, err := io.ReadAll(io.LimitReader(in.r, int64(limit)+1))
	switch {
	case err != nil:
		return nil, errCorruptDeflate
	case len(out) > limit:
		return nil, errInflatedTooBig
	}
	return out, nil
}

// inflateCloseCode is the close code for an error of inflate: 1009 for a
// message too big once inflated, 1007 for a corrupt stream (the frames
// were well formed, their payload is not the data of a message).
func inflateCloseCode(err error) protocol.CloseCode {
	if errors.Is(err, errInflatedTooBig) {
		return protocol.CloseMessageTooBig
	}
	return protocol.CloseInvalidPayload
}

// compressedLimit is the most bytes the compressed frames of a message may
// take: deflate may grow data it cannot compress by a few bytes per block.
func compressedLimit(max int) int { return max + max/256 + 64 }
