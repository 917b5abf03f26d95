//go:build !linux

package herald

import (
	"errors"
	"net"
	"syscall"
)

// poller is Linux only: elsewhere every connection reads with a goroutine of
// its own.
type poller struct{}

func newPoller() (*poller, error) { return nil, errors.ErrUnsupported }

func (p *poller) add(*session) error   { return errors.ErrUnsupported }
func (p *poller) rearm(*session) error { return errors.ErrUnsupported }
func (p *poller) remove(*session)      {}
func (p *poller) run()                 {}
func (p *poller) close()               {}
func (p *poller) release()             {}

func socketFD(net.Conn) (int32, syscall.RawConn) { return -1, nil }

func (s *session) awaitMore() bool { return false }

// writeNow is not called here: no connection is polled.
func (s *session) writeNow([]byte) (int, error) { return 0, nil }

func shutdown(syscall.RawConn) {}
