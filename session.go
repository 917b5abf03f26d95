package herald

import (
	"bufio"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/protocol"
)

// session is one WebSocket connection. Its frames are read and handled in
// order by one goroutine at a time: on Linux a short-lived one each time the
// connection turns readable (netpoll_linux.go), elsewhere and for TLS one for
// the connection's life. Fan-out, the heartbeat and Shutdown reach it through
// the send queue (send.go), which is guarded by mu.
type session struct {
	srv    *Server
	id     string
	conn   net.Conn
	remote string

	lastRead atomic.Int64 // heartbeat clock at the last frame received
	pingSent atomic.Int64 // UnixNano of the unanswered ping, 0 when none
	hb       hbEntry      // owned by the heartbeat scheduler

	// The socket's descriptor when the server polls connections: the
	// connection is parked in the poller between reads and ended with a
	// shutdown; -1 otherwise. Set before the session is shared.
	fd      int32
	pollGen uint32 // owned by the poller
	raw     syscall.RawConn
	reading atomic.Bool // a goroutine is reading; guards against a second
	dead    atomic.Bool // kill was called: what is still unread is ignored
	readFn  func()      // readReady, bound once

	mu sync.Mutex
	sendQueue
	closing    bool // a close frame is queued; nothing more is accepted
	authed     bool // welcome was sent; owned by the reading goroutine
	code       protocol.CloseCode
	reason     string
	closeTimer *time.Timer // ends a parked connection whose peer does not answer the close
	// sent is made when closing starts and closed once the close frame was
	// written or abandoned (it is then closedChan).
	sent     chan struct{}
	subs     []*subscription // one per channel, found by a scan: they are few
	userName string          // the identity's user, readable outside the reader

	// Owned by the reading goroutine.
	fr       frameReader
	br       readBuffer
	identity auth.Identity
	limiter  bucket
	errTimes []time.Time // recent bad requests
}

func newSession(srv *Server, conn net.Conn, br *bufio.Reader, remote string, id auth.Identity, authed bool) *session {
	s := &session{
		srv:      srv,
		identity: id,
		authed:   authed,
		id:       newSessionID(),
		conn:     conn,
		remote:   remote,
		fd:       -1,
		hb:       hbEntry{index: -1},
	}
	// Reads go through a buffer that exists only while there is something to
	// read, so an idle connection holds none. Bytes the client sent right
	// after the handshake may sit in the HTTP server's buffer: they come
	// first.
	s.br.conn, s.br.dead = conn, &s.dead
	if n := br.Buffered(); n > 0 {
		early, _ := br.Peek(n)
		s.br.fill(early)
	}
	s.touch()
	return s
}

func newSessionID() string {
	var b [5]byte
	rand.Read(b[:])
	return "s_" + base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])
}

// touch records that a frame arrived, as proof of life.
func (s *session) touch() { s.lastRead.Store(int64(s.srv.heartbeat.now())) }

// open starts the connection: it is counted, scheduled for heartbeats and
// greeted (or given its hello timeout).
func (s *session) open() {
	s.srv.log.Info("connection opened", "session", s.id, "remote", s.remote)
	s.srv.metrics.opened.Inc()
	s.srv.metrics.connections.Inc()
	s.srv.heartbeat.add(s)
	s.start()
}

// serve opens the connection and reads it with a goroutine of its own
// until it ends.
func (s *session) serve() {
	s.open()
	s.end(s.readLoop())
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
	s.srv.metrics.connClosed(code)
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

// kill ends the connection at once. The goroutine reading it, or the next
// one the poller starts, sees the end and closes it.
func (s *session) kill() {
	s.dead.Store(true)
	if s.fd >= 0 {
		shutdown(s.raw)
		return
	}
	s.conn.Close()
}

// errClosed ends the read loop after a close handshake.
var errClosed = errors.New("closed")

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
		// Drain what the peer still sends so closing does not reset the
		// connection before it has read our close frame.
		s.conn.SetReadDeadline(time.Now().Add(time.Second))
		io.Copy(io.Discard, &s.br)
	}
	s.conn.Close()
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

// recoverPanic turns a panic while handling a frame into an error that
// closes only this connection, with 1011, and logs it.
func (s *session) recoverPanic(err *error) {
	if p := recover(); p != nil {
		s.srv.log.Error("panic in connection handler", "session", s.id, "panic", p)
		s.close(protocol.CloseInternal, "internal error", true)
		*err = fmt.Errorf("panic: %v", p)
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

func (s *session) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// Protocol violations of the framing layer; each closes the connection.
type closeErr struct {
	code   protocol.CloseCode
	reason string
}

func (e *closeErr) Error() string { return fmt.Sprintf("%d %s", e.code, e.reason) }
