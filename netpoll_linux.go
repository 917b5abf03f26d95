package herald

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// poller parks idle connections in an epoll set instead of a goroutine each:
// an idle connection then costs its session and its socket, no stack and no
// read buffer. Each connection is registered one-shot; when it becomes
// readable, its session's readReady runs in a goroutine of its own, reads
// what has arrived and re-arms it.
//
// The socket stays registered with Go's runtime poller too, which the
// goroutine's reads and every write use as usual: the two epoll sets watch
// the same socket independently. The epoll set is itself registered with
// Go's runtime poller, which reports it readable when a connection in it
// is: run waits there like any goroutine waiting for a socket, with no
// thread blocked in epoll_wait, so a connection turning readable wakes the
// process once, not a thread and then the scheduler.
//
// A pong, what an idle connection sends, is read by run itself (pongNow):
// no goroutine, no read buffer.
type poller struct {
	epfd int
	file *os.File // epfd, as Go's runtime poller watches it
	wake int      // eventfd that stops run

	mu    sync.Mutex
	conns map[int32]*session // by file descriptor
	gen   uint32             // tells a session from an earlier one with the same descriptor
}

const pollEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(epfd, true); err != nil { // so that os.NewFile has the runtime poll it
		unix.Close(epfd)
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: -1}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, err
	}
	return &poller{epfd: epfd, file: os.NewFile(uintptr(epfd), "epoll"), wake: wake, conns: make(map[int32]*session)}, nil
}

// socketFD returns the descriptor of a plain TCP connection, which can be
// parked in epoll, or -1 (TLS and other connections keep a goroutine).
func socketFD(c net.Conn) (int32, syscall.RawConn) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return -1, nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return -1, nil
	}
	fd := int32(-1)
	raw.Control(func(f uintptr) { fd = int32(f) })
	return fd, raw
}

// linger is how long a goroutine that has read a connection waits for more,
// in Go's runtime poller, before it parks the connection in epoll and ends:
// a busy connection, such as a publisher's, keeps its goroutine and is read
// as promptly as with one of its own, and only connections idle for longer
// are parked.
const linger = 20 * time.Millisecond

// awaitMore waits up to linger for the connection to be readable again, with
// no read buffer.
func (s *session) awaitMore() bool {
	s.conn.SetReadDeadline(time.Now().Add(linger))
	err := s.raw.Read(readable)
	s.conn.SetReadDeadline(time.Time{})
	return err == nil
}

// readable reports whether fd has a byte to read, its end of stream or an
// error, without consuming anything; false makes RawConn.Read wait.
func readable(fd uintptr) bool {
	var b [1]byte
	_, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1, unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	return errno != unix.EAGAIN
}

// add registers s, armed for its first read. It fails for a connection that
// cannot be polled, which then reads with a goroutine of its own.
func (p *poller) add(s *session) error {
	if s.fd < 0 {
		return errors.ErrUnsupported
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gen++
	s.pollGen = p.gen
	p.conns[s.fd] = s
	ev := unix.EpollEvent{Events: pollEvents, Fd: s.fd, Pad: int32(s.pollGen)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(s.fd), &ev); err != nil {
		delete(p.conns, s.fd)
		return err
	}
	return nil
}

// rearm waits for s to become readable again.
func (p *poller) rearm(s *session) error {
	ev := unix.EpollEvent{Events: pollEvents, Fd: s.fd, Pad: int32(s.pollGen)}
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, int(s.fd), &ev)
}

// remove forgets s; it must run before s's connection is closed, while the
// descriptor is still its own.
func (p *poller) remove(s *session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns[s.fd] == s {
		delete(p.conns, s.fd)
		unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(s.fd), nil)
	}
}

// run dispatches readable connections until close: it reads their pongs
// itself, and starts a goroutine for anything else.
func (p *poller) run() {
	rc, err := p.file.SyscallConn()
	if err != nil {
		return
	}
	events := make([]unix.EpollEvent, 128)
	var ready []*session
	for {
		var n int
		var werr error
		// The runtime's poller watches the set edge-triggered: wait only once
		// the set was found empty.
		err := rc.Read(func(fd uintptr) bool {
			n, werr = unix.EpollWait(int(fd), events, 0)
			return n != 0 || (werr != nil && werr != unix.EINTR)
		})
		if err != nil || werr != nil {
			return
		}
		p.mu.Lock()
		for _, ev := range events[:n] {
			if ev.Fd < 0 {
				p.mu.Unlock()
				return
			}
			s := p.conns[ev.Fd]
			if s == nil || s.pollGen != uint32(ev.Pad) {
				continue // closed since the event was queued
			}
			if s.reading.CompareAndSwap(false, true) {
				ready = append(ready, s)
			}
		}
		p.mu.Unlock()
		// Each is now this goroutine's to read: no other reads it, and none
		// ends it, until it is handed on or parked again.
		for _, s := range ready {
			if !s.pongNow() {
				go s.readFn()
				continue
			}
			s.reading.Store(false)
			if err := p.rearm(s); err != nil {
				go s.end(err)
			}
		}
		clear(ready)
		ready = ready[:0]
	}
}

// pongNow reads what a parked connection sent when it is one small pong
// frame, with one non-blocking read, and records it (s must be this
// goroutine's to read). Otherwise what it read is left in the read buffer
// for readReady, and it returns false.
func (s *session) pongNow() bool {
	if s.dead.Load() || !s.br.empty() {
		return false
	}
	var b [16]byte
	n := 0
	if s.raw.Control(func(fd uintptr) {
		for {
			r, err := unix.Read(int(fd), b[:])
			if err != unix.EINTR {
				n = max(r, 0)
				return
			}
		}
	}) != nil || n == 0 {
		return false // nothing, the end of the stream or an error: readReady sees it again
	}
	// A pong from a client: FIN and the pong opcode, the mask bit and a
	// length that accounts for the rest, then the mask key and the payload,
	// which nothing uses.
	const maskedHeader = 6
	isPong := n >= maskedHeader && b[0] == 0x80|byte(ws.OpPong) && b[1]&0x80 != 0 && int(b[1]&0x7f) == n-maskedHeader
	if isPong {
		if ok, _ := s.limiter.take(time.Now(), s.srv.opts.Rate, s.srv.opts.Burst); ok {
			s.touch()
			s.pong()
			return true
		}
	}
	s.br.fill(b[:n])
	return false
}

// writeNow writes p to the socket without waiting: it returns how much the
// socket took, nothing when its buffer is full. The caller must be the
// connection's writer (send.go).
func (s *session) writeNow(p []byte) (int, error) {
	n := 0
	var err error
	if s.raw.Control(func(fd uintptr) {
		for {
			n, err = unix.Write(int(fd), p)
			if err != unix.EINTR {
				return
			}
		}
	}) != nil || err == unix.EAGAIN {
		return 0, nil // closed meanwhile, which the writer will find, or full
	}
	return max(n, 0), err
}

// close stops run and releases the epoll set. Every connection must have
// been removed.
func (p *poller) close() {
	var one = [8]byte{1}
	unix.Write(p.wake, one[:])
}

// release closes the descriptors once run has returned.
func (p *poller) release() {
	p.file.Close()
	unix.Close(p.wake)
}

// shutdown ends both directions of a connection without closing its
// descriptor: the socket turns readable, so the session's reader sees the
// end wherever it is, parked in epoll or reading, and closes it.
func shutdown(raw syscall.RawConn) {
	raw.Control(func(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_RDWR) })
}
