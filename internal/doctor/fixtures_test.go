package doctor_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// This file starts WebSocket servers the project did not write, in the
// shapes users deploy: Node's ws package as tutorials use it, Python's
// websockets with its keepalive, and a proxy that closes idle connections.

// server is a fixture process: a WebSocket server on 127.0.0.1.
type server struct {
	url    string
	done   chan struct{} // closed when the process exited
	stderr *syncBuffer
}

// exited reports whether the process has ended (after a short grace for
// one that is on its way out).
func (s *server) exited() bool {
	select {
	case <-s.done:
		return true
	case <-time.After(500 * time.Millisecond):
		return false
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startProcess runs cmd, waits for the "listening PORT" line it prints on
// stdout, and stops it when the test ends.
func startProcess(t *testing.T, cmd *exec.Cmd) *server {
	t.Helper()
	s := &server{done: make(chan struct{}), stderr: &syncBuffer{}}
	cmd.Stderr = s.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.done
		if t.Failed() {
			t.Logf("%s stderr:\n%s", filepath.Base(cmd.Args[1]), s.stderr.String())
		}
	})
	select {
	case line := <-lines:
		port, ok := strings.CutPrefix(line, "listening ")
		if !ok {
			t.Fatalf("%s printed %q, want listening PORT", cmd, line)
		}
		s.url = "ws://127.0.0.1:" + port + "/"
	case <-s.done:
		t.Fatalf("%s exited before listening:\n%s", cmd, s.stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not start listening within 20 s:\n%s", cmd, s.stderr.String())
	}
	return s
}

var (
	npmOnce sync.Once
	npmErr  error
)

// interopModules returns interop/node_modules, with the ws package in it:
// scripts/test runs npm ci there; when nobody has, this does.
func interopModules(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "interop"))
	if err != nil {
		t.Fatal(err)
	}
	modules := filepath.Join(dir, "node_modules")
	npmOnce.Do(func() {
		if _, err := os.Stat(filepath.Join(modules, "ws", "package.json")); err == nil {
			return
		}
		npm, err := exec.LookPath("npm")
		if err != nil {
			npmErr = fmt.Errorf("interop/node_modules has no ws package and npm is not installed to run npm ci: %w", err)
			return
		}
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			npmErr = fmt.Errorf("npm ci in interop/: %v\n%s", err, out)
		}
	})
	if npmErr != nil {
		t.Fatal(npmErr)
	}
	return modules
}

// startWS runs testdata/ws_server.cjs, a tutorial-style server on Node's
// ws package, with a ping every heartbeat (zero: none) and, when
// errorListener, an 'error' listener on every socket.
func startWS(t *testing.T, heartbeat time.Duration, errorListener bool) *server {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the Node ws fixtures need Node.js 20+ (scripts/test installs it)")
	}
	modules := interopModules(t)
	args := []string{"testdata/ws_server.cjs", "--heartbeat", fmt.Sprint(heartbeat.Milliseconds())}
	if errorListener {
		args = append(args, "--error-listener")
	}
	cmd := exec.Command(node, args...)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	return startProcess(t, cmd)
}

// startWebsockets runs testdata/websockets_server.py, a server on Python's
// websockets package with its keepalive set to ping and pong timeout.
func startWebsockets(t *testing.T, ping, pongTimeout time.Duration) *server {
	t.Helper()
	python := pythonWithWebsockets(t)
	cmd := exec.Command(python, "testdata/websockets_server.py",
		"--ping-interval", fmt.Sprint(ping.Seconds()), "--ping-timeout", fmt.Sprint(pongTimeout.Seconds()))
	return startProcess(t, cmd)
}

// pythonWithWebsockets returns a Python 3 that imports websockets:
// /usr/bin/python3 (Debian's python3-websockets, which scripts/test
// installs) or the first python3 on PATH.
func pythonWithWebsockets(t *testing.T) string {
	t.Helper()
	candidates := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	for _, p := range candidates {
		if exec.Command(p, "-c", "import websockets").Run() == nil {
			return p
		}
	}
	t.Skip("no python3 with the websockets package (Debian: apt-get install python3-websockets; scripts/test installs it)")
	return ""
}

// startIdleProxy relays TCP connections to backend (host:port) and closes
// a connection once no byte went either way for idle, as proxies and load
// balancers do. It returns the address to dial.
func startIdleProxy(t *testing.T, backend string, idle time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
	)
	track := func(c net.Conn) {
		mu.Lock()
		defer mu.Unlock()
		conns[c] = true
	}
	wg.Go(func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", backend)
			if err != nil {
				client.Close()
				continue
			}
			track(client)
			track(up)
			wg.Go(func() { relayIdle(client, up, idle) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// relayIdle copies both ways and closes both connections when either side
// ends or both stay quiet for idle.
func relayIdle(a, b net.Conn, idle time.Duration) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				last.Store(time.Now().UnixNano())
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}
	go pipe(a, b)
	go pipe(b, a)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	ended := 0
	for ended == 0 && time.Since(time.Unix(0, last.Load())) <= idle {
		select {
		case <-done:
			ended++
		case <-tick.C:
		}
	}
	a.Close()
	b.Close()
	for ; ended < 2; ended++ {
		<-done
	}
}

// hostPort returns the host:port of a ws:// URL.
func hostPort(url string) string {
	return strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/")
}
