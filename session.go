package herald

import (
	"bufio"
	"crypto/rand"
	"encoding/base32"
	"fmt"
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
	deflate bool   // permessage-deflate was negotiated; set before the session is shared
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

	hooked atomic.Bool // made through the connect hook (hooks.go): its expiry asks the refresh hook
	hook   *hookedConn // what the connect hook answered, nil without it; set before the session is shared

	// Owned by the reading goroutine.
	fr           frameReader
	br           readBuffer
	identity     auth.Identity
	limiter      bucket        // requests and frames
	publishBytes bucket        // bytes of published data
	errTimes     []time.Time   // recent bad requests
	pubs         *publishBatch // publishes of this read waiting to go to the broker together
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

// recoverPanic turns a panic while handling a frame into an error that
// closes only this connection, with 1011, and logs it.
func (s *session) recoverPanic(err *error) {
	if p := recover(); p != nil {
		s.srv.log.Error("panic in connection handler", "session", s.id, "panic", p)
		s.dropAndClose(protocol.CloseInternal, "internal error")
		*err = fmt.Errorf("panic: %v", p)
	}
}

func (s *session) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}
