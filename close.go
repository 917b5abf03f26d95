package herald

import (
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald/protocol"
)

// How a connection ends. One verb per way:
//
//   - close queues a close frame after the frames already queued: the
//     handshake, for everything the server decides (shutdown, 4001, 4029).
//   - dropAndClose discards the queued frames first, then queues the close
//     frame: for when the queue itself is the problem (4008) or cannot be
//     trusted (1011 after a panic).
//   - fail closes for a protocol violation and returns the error that ends
//     the read loop; peerClosed answers the client's close frame.
//   - terminate ends the connection without a handshake (dead peer, failed
//     write); kill is how: it cuts the socket.
//   - end runs once the reading has stopped: finish waits for the close frame
//     to be written and the peer's answer, closes the socket, and end then
//     releases everything the connection held.

// close queues a close frame with code and reason after the frames already
// queued; nothing is queued after it. The read loop then ends with the
// handshake.
func (s *session) close(code protocol.CloseCode, reason string) {
	s.mu.Lock()
	s.closeLocked(code, reason)
	s.mu.Unlock()
}

// dropAndClose discards the frames still queued, then closes like close.
func (s *session) dropAndClose(code protocol.CloseCode, reason string) {
	s.mu.Lock()
	s.dropAndCloseLocked(code, reason)
	s.mu.Unlock()
}

// dropAndCloseLocked is dropAndClose with s.mu held.
func (s *session) dropAndCloseLocked(code protocol.CloseCode, reason string) {
	if s.closing {
		return
	}
	s.srv.metrics.queueDropped.Add(float64(len(s.queue)))
	clear(s.queue)
	s.queue, s.queued = s.queue[:0], 0
	s.closeLocked(code, reason)
}

// closeLocked is close with s.mu held.
func (s *session) closeLocked(code protocol.CloseCode, reason string) {
	if s.closing {
		return
	}
	s.closing = true
	s.code, s.reason = code, reason
	s.sent = make(chan struct{})
	if code == protocol.CloseSlowConsumer {
		s.srv.metrics.slowConsumers.Inc()
	}
	body := ws.NewCloseFrameBody(ws.StatusCode(code), cutReason(reason))
	s.pushLocked(buildFrame(ws.OpClose, body))
	// Give the peer until then to answer: a reader waiting for frames that
	// will not come fails, a parked connection is ended. A client that
	// answers the close frame ends the connection sooner.
	wait := s.srv.opts.WriteTimeout + time.Second
	s.conn.SetReadDeadline(time.Now().Add(wait))
	if s.fd >= 0 {
		s.closeTimer = time.AfterFunc(wait, s.kill)
	}
}

// cutReason shortens reason to what a close frame holds (123 bytes), at a
// character boundary: a reason cut inside a UTF-8 character is a protocol
// error to the peer, which then sees 1006 instead of the code.
func cutReason(reason string) string {
	const most = ws.MaxControlFramePayloadSize - 2
	if len(reason) <= most {
		return reason
	}
	n := most
	for n > 0 && !utf8.RuneStart(reason[n]) {
		n--
	}
	return reason[:n]
}

// closeErr is a protocol violation of the framing layer; it ends the read
// loop after fail queued the close frame.
type closeErr struct {
	code   protocol.CloseCode
	reason string
}

func (e *closeErr) Error() string { return fmt.Sprintf("%d %s", e.code, e.reason) }

// reasonClientClosed is the reason of a close the client started.
const reasonClientClosed = "closed by client"

// errClosed ends the read loop after a close handshake.
var errClosed = errors.New("closed")

// fail queues a close frame for a protocol violation and returns the error
// that ends the read loop.
func (s *session) fail(code protocol.CloseCode, reason string) error {
	s.close(code, reason)
	return &closeErr{code: code, reason: reason}
}

// peerClosed answers the client's close frame by echoing its code, unless the
// server started the close handshake itself.
func (s *session) peerClosed(payload []byte) error {
	code, reason := ws.ParseCloseFrameData(payload)
	switch {
	case len(payload) == 1:
		return s.fail(protocol.CloseProtocolError, "malformed close frame")
	case len(payload) == 0:
		code = ws.StatusNormalClosure
	case !closeCodeValid(code):
		return s.fail(protocol.CloseProtocolError, fmt.Sprintf("close code %d is not allowed on the wire", code))
	case !utf8.ValidString(reason):
		return s.fail(protocol.CloseProtocolError, "close reason is not valid UTF-8")
	}
	s.close(protocol.CloseCode(code), reasonClientClosed)
	return errClosed
}

// closeCodeValid reports whether a peer may send code in a close frame
// (RFC 6455 §7.4): the codes defined for the protocol (1000-1003,
// 1007-1014; 1004-1006 and 1015 are reserved, 1016-2999 unassigned), and
// the ranges for libraries and applications, 3000-4999.
func closeCodeValid(code ws.StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	}
	return code >= 3000 && code <= 4999
}

// terminate ends the connection at once, without a close handshake: the
// peer is dead, gone, or too slow to be written to.
func (s *session) terminate(reason string) {
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		s.code, s.reason = protocol.CloseAbnormal, reason
	}
	s.signalSentLocked()
	s.mu.Unlock()
	s.kill()
}

// kill cuts the socket. The goroutine reading it, or the next one the poller
// starts, sees the end and ends the connection.
func (s *session) kill() {
	s.dead.Store(true)
	if s.fd >= 0 {
		shutdown(s.raw)
		return
	}
	s.conn.Close()
}

// closedChan is a session's sent once it has been signalled.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// signalSentLocked marks the close frame as written or abandoned. s.mu must
// be held.
func (s *session) signalSentLocked() {
	if s.sent != nil && s.sent != closedChan {
		close(s.sent)
	}
	s.sent = closedChan
}

// end closes the connection after its reading ended with err, and releases
// everything it held.
func (s *session) end(err error) {
	if s.fd >= 0 {
		s.srv.poller.remove(s)
	}
	s.finish(err)
	s.srv.heartbeat.remove(s)
	s.unsubscribeAll()
	s.srv.untrack(s)
	s.mu.Lock()
	code, reason := s.code, s.reason
	if s.closeTimer != nil {
		s.closeTimer.Stop()
	}
	s.mu.Unlock()
	if code == 0 {
		code = protocol.CloseAbnormal
	}
	s.srv.metrics.connClosed(code, reason == reasonClientClosed)
	attrs := []any{"session", s.id, "remote", s.remote, "code", int(code), "reason", reason}
	if err != nil && !errors.Is(err, errClosed) {
		attrs = append(attrs, "err", err)
	}
	if code == protocol.CloseNormal || code == protocol.CloseGoingAway {
		s.srv.log.Info("connection closed", attrs...)
	} else {
		s.srv.log.Warn("connection closed", attrs...)
	}
}

// finish ends the connection: it waits for a queued close frame to be
// written, lets the peer answer it for a moment, and closes the socket.
func (s *session) finish(err error) {
	s.mu.Lock()
	closing, sent := s.closing, s.sent
	s.mu.Unlock()
	if !closing {
		s.conn.Close()
		return
	}
	select {
	case <-sent:
	case <-time.After(s.srv.opts.WriteTimeout):
	}
	if !errors.Is(err, errClosed) {
		s.conn.SetReadDeadline(time.Now().Add(time.Second))
		s.awaitPeerClose()
	}
	s.conn.Close()
}

// awaitPeerClose reads and discards what the peer still sends until its
// close frame, so that closing the socket does not reset the connection
// before the peer has read ours. The server then closes the TCP connection
// at once (RFC 6455 §7.1.1); the read deadline bounds the wait.
func (s *session) awaitPeerClose() {
	for {
		h, err := ws.ReadHeader(&s.br)
		if err != nil {
			return
		}
		if _, err := io.CopyN(io.Discard, &s.br, h.Length); err != nil || h.OpCode == ws.OpClose {
			return
		}
	}
}
