package herald

import (
	"encoding/binary"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/protocol"
)

// maxHeaderSize is the largest header of a server frame (no mask).
const maxHeaderSize = 10

// buildFrame returns an unmasked server frame holding payload.
func buildFrame(op ws.OpCode, payload []byte) []byte {
	b := appendHeader(make([]byte, 0, maxHeaderSize+len(payload)), op, len(payload))
	return append(b, payload...)
}

// appendHeader appends the header of a final, unmasked frame of n bytes.
func appendHeader(b []byte, op ws.OpCode, n int) []byte {
	switch {
	case n < 126:
		return append(b, 0x80|byte(op), byte(n))
	case n <= 0xffff:
		return append(b, 0x80|byte(op), 126, byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 0x80|byte(op), 127), uint64(n))
}

// frameInPlace turns b, a payload after maxHeaderSize bytes of room, into
// a final, unmasked frame, without copying the payload. A compressed
// payload (permessage-deflate) gets RSV1.
func frameInPlace(op ws.OpCode, compressed bool, b []byte) []byte {
	var h [maxHeaderSize]byte
	hdr := appendHeader(h[:0], op, len(b)-maxHeaderSize)
	if compressed {
		hdr[0] |= 0x40
	}
	start := maxHeaderSize - len(hdr)
	copy(b[start:], hdr)
	return b[start:]
}

// messageFrame encodes p's message frame, with its time and sender, in one
// allocation.
func messageFrame(p broker.Publication) []byte {
	b := make([]byte, maxHeaderSize, messageFrameSize(p))
	return frameInPlace(ws.OpText, false, protocol.AppendMessage(b, p.Channel, p.Offset, p.Time, fromField(&p.From), p.Data))
}

// fromField returns the from field of a publication's message: nil when
// the application published it.
func fromField(f *broker.From) *protocol.From {
	if f.Client == "" && f.User == "" {
		return nil
	}
	return f
}

// messageFrameSize is the most bytes p's message frame can take: ids may
// need six bytes per byte once escaped.
func messageFrameSize(p broker.Publication) int {
	const fields = len(`{"type":"message","channel":"","offset":18446744073709551615,"ts":-9223372036854775808,"data":null}`)
	const from = len(`,"from":{"client":"","user":""}`)
	n := maxHeaderSize + fields + len(p.Channel) + len(p.Data)
	if p.From != (broker.From{}) {
		n += from + 6*(len(p.From.Client)+len(p.From.User))
	}
	return n
}
