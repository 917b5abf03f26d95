package herald

import (
	"io"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"

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
	deflate    wsflate.MessageState // whether the message is compressed (RSV1 on its first frame)
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
	if h, err = fr.checkHeader(s, h); err != nil {
		return message{}, err
	}
	if h.OpCode.IsControl() {
		return message{}, fr.control(s, h)
	}
	limit := s.srv.opts.MaxMessageBytes
	if fr.deflate.IsCompressed() {
		limit = compressedLimit(limit)
	}
	if int64(len(fr.buf))+h.Length > int64(limit) {
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
		s.throttleFrame() // the message it starts or continues is not complete
		return message{}, nil
	}
	msg := message{data: fr.buf, binary: fr.binary, complete: true}
	fr.buf = nil // an idle connection keeps no buffer
	if fr.deflate.IsCompressed() {
		if msg.data, err = inflate(msg.data, s.srv.opts.MaxMessageBytes); err != nil {
			return message{}, s.fail(inflateCloseCode(err), err.Error())
		}
	}
	if !msg.binary && !utf8.Valid(msg.data) {
		return message{}, s.fail(protocol.CloseInvalidPayload, "invalid UTF-8")
	}
	return msg, nil
}

// checkHeader fails the connection with 1002 for a header that breaks RFC
// 6455 or, on a connection that negotiated permessage-deflate, RFC 7692:
// RSV1 is allowed there on the first frame of a data message only. It
// returns h with RSV1 cleared.
func (fr *frameReader) checkHeader(s *session, h ws.Header) (ws.Header, error) {
	state := ws.StateServerSide
	if fr.fragmented {
		state |= ws.StateFragmented
	}
	if s.deflate {
		var err error
		if h, err = fr.deflate.UnsetBits(h); err != nil {
			return h, s.fail(protocol.CloseProtocolError, err.Error())
		}
	}
	if err := ws.CheckHeader(h, state); err != nil {
		return h, s.fail(protocol.CloseProtocolError, err.Error())
	}
	return h, nil
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
		s.throttleFrame()
	case ws.OpPong:
		s.pong()
		s.throttleFrame()
	case ws.OpClose:
		return s.peerClosed(payload)
	}
	return nil
}

// readLoop reads frames until the connection ends.
func (s *session) readLoop() (err error) {
	defer s.recoverPanic(&err)
	for {
		msg, err := s.fr.next(s)
		if err != nil {
			return err
		}
		s.dispatch(msg)
	}
}

// readReady runs when the poller found the connection readable: it handles
// every frame that has arrived, and what follows within linger, then parks
// the connection again, or ends it.
func (s *session) readReady() {
	for {
		if err := s.readBuffered(); err != nil {
			s.end(err)
			return
		}
		if !s.awaitMore() {
			break
		}
	}
	s.reading.Store(false)
	if err := s.srv.poller.rearm(s); err != nil {
		s.end(err)
	}
}

// readBuffered reads frames until none is left in the read buffer. A frame
// that has only partly arrived is waited for.
func (s *session) readBuffered() (err error) {
	defer s.recoverPanic(&err)
	s.br.acquire()
	defer s.br.release()
	s.batchPublishes()
	defer s.flushPublishes()
	for {
		msg, err := s.fr.next(s)
		if err != nil {
			return err
		}
		s.dispatch(msg)
		if s.br.empty() {
			return nil
		}
	}
}

// dispatch handles one complete message.
func (s *session) dispatch(msg message) {
	if !msg.complete || s.isClosing() {
		return // only the peer's close frame matters once closing
	}
	s.srv.metrics.received.Inc()
	s.srv.metrics.receivedBytes.Add(float64(len(msg.data)))
	if msg.binary {
		s.reply(&protocol.Error{Code: protocol.CodeBadRequest, Message: "binary frames are not supported; send JSON text"})
		return
	}
	s.handle(msg.data)
}
