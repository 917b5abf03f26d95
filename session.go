package herald

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/protocol"
)

// session is one WebSocket connection. Its reader goroutine (serve) reads and
// handles frames in order; fan-out, the heartbeat and Shutdown reach it
// through the send queue (send.go), which is guarded by mu.
type session struct {
	srv    *Server
	id     string
	conn   net.Conn
	r      io.Reader
	remote string
	addr   string // remote IP, for the per-address limit

	lastRead atomic.Int64 // heartbeat clock at the last frame received
	pingSent atomic.Int64 // UnixNano of the unanswered ping, 0 when none
	hb       hbEntry      // owned by the heartbeat scheduler

	mu sync.Mutex
	sendQueue
	closing  bool // a close frame is queued; nothing more is accepted
	code     protocol.CloseCode
	reason   string
	sent     chan struct{} // closed once the close frame was written (or failed)
	sentOnce sync.Once
	subs     map[string]*subscription
	userName string // the identity's user, readable outside the reader

	// Owned by the reader goroutine.
	identity auth.Identity
	authed   bool // welcome was sent
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
		r:        conn,
		remote:   remote,
		sent:     make(chan struct{}),
		subs:     make(map[string]*subscription),
		hb:       hbEntry{index: -1},
	}
	// Bytes the client sent right after the handshake may sit in the HTTP
	// server's buffer; read them first, then the socket without a buffer of
	// our own, so an idle connection holds no read buffer.
	if n := br.Buffered(); n > 0 {
		early, _ := br.Peek(n)
		s.r = io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn)
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

// serve runs the connection until it ends, then releases everything it held.
func (s *session) serve() {
	log := s.srv.log.With("session", s.id, "remote", s.remote)
	log.Info("connection opened")
	s.srv.metrics.opened.Inc()
	s.srv.metrics.connections.Inc()
	s.srv.heartbeat.add(s)
	s.start()
	err := s.readLoop()
	s.finish(err)
	s.srv.heartbeat.remove(s)
	s.unsubscribeAll()
	s.srv.untrack(s)
	s.mu.Lock()
	code, reason := s.code, s.reason
	s.mu.Unlock()
	if code == 0 {
		code = protocol.CloseAbnormal
	}
	s.srv.metrics.connClosed(code)
	attrs := []any{"code", int(code), "reason", reason}
	if err != nil && !errors.Is(err, errClosed) {
		attrs = append(attrs, "err", err)
	}
	if code == protocol.CloseNormal || code == protocol.CloseGoingAway {
		log.Info("connection closed", attrs...)
	} else {
		log.Warn("connection closed", attrs...)
	}
}

// errClosed ends the read loop after a close handshake.
var errClosed = errors.New("closed")

// finish ends the connection: it waits for a queued close frame to be
// written, lets the peer answer it for a moment, and closes the socket.
func (s *session) finish(err error) {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if !closing {
		s.conn.Close()
		return
	}
	select {
	case <-s.sent:
	case <-time.After(s.srv.opts.WriteTimeout):
	}
	if !errors.Is(err, errClosed) {
		// Drain what the peer still sends so closing does not reset the
		// connection before it has read our close frame.
		s.conn.SetReadDeadline(time.Now().Add(time.Second))
		io.Copy(io.Discard, s.r)
	}
	s.conn.Close()
}

// readLoop reads frames until the connection ends. A panic while handling a
// frame is logged and closes only this connection, with 1011.
func (s *session) readLoop() (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.srv.log.Error("panic in connection handler", "session", s.id, "panic", p)
			s.close(protocol.CloseInternal, "internal error", true)
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	var fr frameReader
	for {
		msg, err := fr.next(s)
		if err != nil {
			return err
		}
		if s.isClosing() {
			continue // only the peer's close frame matters now
		}
		s.srv.metrics.received.Inc()
		s.srv.metrics.receivedBytes.Add(float64(len(msg.data)))
		if msg.binary {
			s.reply(&protocol.Error{Code: protocol.CodeBadRequest, Message: "binary frames are not supported; send JSON text"})
			continue
		}
		s.handle(msg.data)
	}
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
