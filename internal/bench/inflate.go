package bench

import (
	"bytes"
	"compress/flate"
	"io"
	"sync"
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

// inflated remembers the messages inflated lately, by their compressed
// bytes. A publication's compressed frame is the same for every
// subscriber, so the load side inflates it once for all of them: a real
// client inflates on its own device, and a load generator that inflated
// 5,000 times per publication on the server's machine would measure itself.
var inflated = struct {
	sync.Mutex
	m map[string][]byte
}{m: make(map[string][]byte)}

// inflateShared returns the message compressed in p, inflated by in unless
// another connection inflated the same bytes lately. The result must not
// be modified.
func (in *inflater) inflateShared(p []byte) ([]byte, error) {
	inflated.Lock()
	out, ok := inflated.m[string(p)]
	inflated.Unlock()
	if ok {
		return out, nil
	}
	key := string(p)
	out, err := in.inflate(p)
	if err != nil {
		return nil, err
	}
	out = bytes.Clone(out)
	inflated.Lock()
	if len(inflated.m) >= 4096 {
		clear(inflated.m)
	}
	inflated.m[key] = out
	inflated.Unlock()
	return out, nil
}

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
