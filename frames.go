package herald

import (
	"encoding/binary"
	"io"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald/protocol"
)

// message is one complete data message from the client.
type message struct {
	data     []byte
	binary   bool
	complete bool // false after a control frame or a fragment: nothing to handle
}

// frameReader reads a client's frames: it enforces the size limit from each
// frame header before allocating, reassembles fragments, answers pings,
// checks UTF-8 and runs the close handshake. It is used by the session's
// reader goroutine only.
type frameReader struct {
	buf        []byte // the message being reassembled
	fragmented bool
	binary     bool
}

// next reads one frame. It returns the message a data frame completes, or
// an incomplete message after a control frame (which it handles) or a
// fragment (which it keeps), so that a reader can stop between frames.
// A protocol violation queues the matching close frame and returns a
// *closeErr; a close frame from the client returns errClosed.
func (fr *frameReader) next(s *session) (message, error) {
	h, err := ws.ReadHeader(&s.br)
	if err != nil {
		return message{}, err
	}
	s.touch()
	state := ws.StateServerSide
	if fr.fragmented {
		state |= ws.StateFragmented
	}
	if err := ws.CheckHeader(h, state); err != nil {
		return message{}, s.fail(1002, err.Error())
	}
	if h.OpCode.IsControl() {
		return message{}, fr.control(s, h)
	}
	if int64(len(fr.buf))+h.Length > int64(s.srv.opts.MaxMessageBytes) {
		return message{}, s.fail(protocol.CloseMessageTooBig, "message larger than max_message_bytes")
	}
	if h.OpCode != ws.OpContinuation {
		fr.binary = h.OpCode == ws.OpBinary
	}
	n := len(fr.buf)
	fr.buf = append(fr.buf, make([]byte, h.Length)...)
	if _, err := io.ReadFull(&s.br, fr.buf[n:]); err != nil {
		return message{}, err
	}
	ws.Cipher(fr.buf[n:], h.Mask, 0)
	fr.fragmented = !h.Fin
	if fr.fragmented {
		return message{}, nil
	}
	msg := message{data: fr.buf, binary: fr.binary, complete: true}
	fr.buf = nil // an idle connection keeps no buffer
	if !msg.binary && !utf8.Valid(msg.data) {
		return message{}, s.fail(protocol.CloseInvalidPayload, "invalid UTF-8")
	}
	return msg, nil
}

// control handles a ping, pong or close frame.
func (fr *frameReader) control(s *session, h ws.Header) error {
	payload := make([]byte, h.Length)
	if _, err := io.ReadFull(&s.br, payload); err != nil {
		return err
	}
	ws.Cipher(payload, h.Mask, 0)
	switch h.OpCode {
	case ws.OpPing:
		s.sendControl(ws.OpPong, payload)
		s.throttlePing()
	case ws.OpPong:
		s.pong()
	case ws.OpClose:
		return s.peerClosed(payload)
	}
	return nil
}

// peerClosed answers the client's close frame by echoing its code, unless the
// server started the close handshake itself.
func (s *session) peerClosed(payload []byte) error {
	code, reason := ws.ParseCloseFrameData(payload)
	switch {
	case len(payload) == 1:
		return s.fail(1002, "malformed close frame")
	case len(payload) == 0:
		code = ws.StatusNormalClosure
	case ws.CheckCloseFrameData(code, reason) != nil:
		return s.fail(1002, "invalid close code or reason")
	}
	s.close(protocol.CloseCode(code), "closed by client", false)
	return errClosed
}

// fail queues a close frame for a protocol violation and returns the error
// that ends the read loop.
func (s *session) fail(code protocol.CloseCode, reason string) error {
	s.close(code, reason, false)
	return &closeErr{code: code, reason: reason}
}

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
// a final, unmasked frame, without copying the payload.
func frameInPlace(op ws.OpCode, b []byte) []byte {
	var h [maxHeaderSize]byte
	hdr := appendHeader(h[:0], op, len(b)-maxHeaderSize)
	start := maxHeaderSize - len(hdr)
	copy(b[start:], hdr)
	return b[start:]
}
