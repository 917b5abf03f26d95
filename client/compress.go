package client

import (
	"compress/flate"
	"fmt"
	"io"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/gobwas/ws/wsutil"
)

// permessage-deflate (RFC 7692), offered when Options.Compression is set.
// The client offers server_no_context_takeover, so that every message the
// server compresses stands alone and is inflated by a fresh decompressor
// state; the client itself sends its messages uncompressed, which the RFC
// allows for any message.

// deflateOffer is the extension the client offers.
var deflateOffer = wsflate.Parameters{ServerNoContextTakeover: true, ClientNoContextTakeover: true}.Option()

// deflateAccepted reports whether the server accepted permessage-deflate
// among the extensions of its upgrade response.
func deflateAccepted(exts []httphead.Option) bool {
	for _, e := range exts {
		if string(e.Name) == wsflate.ExtensionName {
			return true
		}
	}
	return false
}

// inflater reads compressed messages of one connection.
type inflater struct {
	state wsflate.MessageState // whether the message being read is compressed
	r     *wsflate.Reader      // made on the first compressed message
}

// enable makes rd read the RSV1 bit of permessage-deflate into in.state.
// UTF-8 is then checked after inflating, not on the compressed bytes.
func (in *inflater) enable(rd *wsutil.Reader) {
	rd.State |= ws.StateExtended
	rd.Extensions = []wsutil.RecvExtension{&in.state}
	rd.CheckUTF8 = false
}

// message returns a reader of the current message's payload from rd:
// inflated when it came compressed.
func (in *inflater) message(rd io.Reader) io.Reader {
	if !in.state.IsCompressed() {
		return rd
	}
	if in.r == nil {
		in.r = wsflate.NewReader(rd, func(r io.Reader) wsflate.Decompressor { return resettable{flate.NewReader(r)} })
	} else {
		in.r.Reset(rd)
	}
	return in.r
}

// resettable lets wsflate.Reader reuse a flate decompressor.
type resettable struct{ io.ReadCloser }

func (r resettable) Reset(src io.Reader) { r.ReadCloser.(flate.Resetter).Reset(src, nil) }

// readMessage reads a message of at most max bytes once inflated.
func readMessage(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err == nil && int64(len(b)) > max {
		err = fmt.Errorf("herald: message from the server larger than %d bytes", max)
	}
	return b, err
}
