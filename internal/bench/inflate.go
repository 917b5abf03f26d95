package bench

import (
	"bytes"
	"compress/flate"
	"io"
)

// inflater inflates a connection's permessage-deflate messages (the server
// compresses each on its own: no context takeover), reusing its
// decompressor and buffers.
type inflater struct {
	src bytes.Reader
	r   io.ReadCloser
	out bytes.Buffer
}

// inflateTail is the tail the sender removed (RFC 7692 §7.2.1) and an empty
// final block.
var inflateTail = []byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff}

// inflate returns the message compressed in p; it may append to p's array.
// The result is valid until the next call.
func (in *inflater) inflate(p []byte) ([]byte, error) {
	in.src.Reset(append(p, inflateTail...))
	if in.r == nil {
		in.r = flate.NewReader(&in.src)
	} else {
		in.r.(flate.Resetter).Reset(&in.src, nil)
	}
	in.out.Reset()
	if _, err := in.out.ReadFrom(in.r); err != nil {
		return nil, err
	}
	return in.out.Bytes(), nil
}
