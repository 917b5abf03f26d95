package client_test

import (
	"net"
	"sync"
	"testing"
)

// proxy is a TCP relay that can silently stop forwarding, one direction or
// both, while keeping every socket open: no FIN, no RST, as when a NAT or a
// mobile network loses the connection. Bytes (and hang-ups) read while a
// direction is held wait until it is released.
type proxy struct {
	ln       net.Listener
	upstream string

	mu   sync.Mutex
	cond *sync.Cond
	hold [2]bool // [toServer, toClient]
	wg   sync.WaitGroup
	all  []net.Conn
}

const (
	toServer = 0
	toClient = 1
)

func startProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, upstream: upstream}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// set holds (true) or releases (false) the given directions.
func (p *proxy) set(hold bool, dirs ...int) {
	p.mu.Lock()
	for _, d := range dirs {
		p.hold[d] = hold
	}
	p.mu.Unlock()
	p.cond.Broadcast()
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.all = append(p.all, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(s, c, toServer)
		go p.pipe(c, s, toClient)
	}
}

// pipe copies from src to dst, waiting at every chunk (and at the end)
// while its direction is held.
func (p *proxy) pipe(dst, src net.Conn, dir int) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.wait(dir)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			dst.Close()
			src.Close()
			return
		}
	}
}

func (p *proxy) wait(dir int) {
	p.mu.Lock()
	for p.hold[dir] {
		p.cond.Wait()
	}
	p.mu.Unlock()
}

func (p *proxy) close() {
	p.ln.Close()
	p.set(false, toServer, toClient)
	p.mu.Lock()
	for _, c := range p.all {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
