package herald

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
	"unsafe"

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
// the same socket independently.
type poller struct {
	epfd int
	wake int // eventfd that stops run

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
	return &poller{epfd: epfd, wake: wake, conns: make(map[int32]*session)}, nil
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

// run dispatches readable connections until close.
func (p *poller) run() {
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
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
				go s.readFn()
			}
		}
		p.mu.Unlock()
	}
}

// close stops run and releases the epoll set. Every connection must have
// been removed.
func (p *poller) close() {
	var one = [8]byte{1}
	unix.Write(p.wake, one[:])
}

// release closes the descriptors once run has returned.
func (p *poller) release() {
	unix.Close(p.epfd)
	unix.Close(p.wake)
}

// shutdown ends both directions of a connection without closing its
// descriptor: the socket turns readable, so the session's reader sees the
// end wherever it is, parked in epoll or reading, and closes it.
func shutdown(raw syscall.RawConn) {
	raw.Control(func(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_RDWR) })
}
