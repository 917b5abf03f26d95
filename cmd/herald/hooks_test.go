package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// startPythonBackend runs examples/hooks/backend.py, an application backend
// written as an outside one would be, and returns its base URL and the
// file it logs each request to.
func startPythonBackend(t *testing.T, secret string) (string, string) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is needed for the hook backend: ", err)
	}
	logFile := filepath.Join(t.TempDir(), "requests.log")
	cmd := exec.Command(py, "../../examples/hooks/backend.py", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "HERALD_HOOK_SECRET="+secret, "LOG="+logFile)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if err != nil || !ok {
		t.Fatalf("backend did not start: %q %v", line, err)
	}
	return "http://" + addr, logFile
}

// TestServeHooksWithPythonBackend runs herald serve against a Python
// backend (standard library only): connect by cookie with a server-side
// channel, subscribe refused by the backend, publish rewritten, rpc
// answered, all signed with --hook-secret.
func TestServeHooksWithPythonBackend(t *testing.T) {
	const secret = "s3cret-for-hooks"
	backend, logFile := startPythonBackend(t, secret)
	bin := buildHerald(t)
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0",
		"--hook-connect", backend+"/connect", "--hook-subscribe", backend+"/subscribe",
		"--hook-publish", backend+"/publish", "--hook-rpc", backend+"/rpc", "--hook-cookies", "session")
	cmd.Env = append(os.Environ(), "HERALD_HOOK_SECRET="+secret)
	_, base := startServeCmd(t, cmd)
	wsURL := "ws" + strings.TrimPrefix(base, "http") + "/ws"
	cookie := func(v string) *heraldtest.DialOptions {
		return &heraldtest.DialOptions{Header: http.Header{"Cookie": {"session=" + v + "; other=x"}}}
	}

	if _, err := heraldtest.Dial(t.Context(), wsURL, cookie("nobody")); !errors.Is(err, ws.StatusError(http.StatusUnauthorized)) {
		t.Fatalf("upgrade with an unknown session: %v, want 401", err)
	}

	ann := heraldtest.MustDial(t, wsURL, cookie("ann-cookie"))
	sid := ann.Expect(t, "welcome").Fields()["session"].(string)
	if f := ann.Expect(t, "subscribed"); f.Channel != "private:ann" || f.ID != 0 {
		t.Fatalf("server-side subscription %s", f)
	}
	ann.Send(t, `{"type":"subscribe","id":1,"channel":"private:bob"}`)
	if e := ann.ExpectError(t, "forbidden", 1); e.Message != "not your channel" {
		t.Fatalf("error %s", e)
	}
	ann.Subscribe(t, 2, "shout:room", nil)
	ann.Send(t, `{"type":"publish","id":3,"channel":"shout:room","data":{"text":"hello"}}`)
	for range 2 { // published and the message, in either order
		f, err := ann.Next(heraldtest.Timeout)
		switch {
		case err != nil:
			t.Fatal(err)
		case f.Type == "message" && string(f.Data) != `{"text": "HELLO"}`:
			t.Fatalf("message %s, want the backend's data", f)
		case f.Type != "message" && f.Type != "published":
			t.Fatalf("got %s", f)
		}
	}
	ann.Send(t, `{"type":"rpc","id":4,"method":"whoami","data":[1,2]}`)
	if r := ann.Expect(t, "result"); r.ID != 4 || string(r.Data) != `{"user":"ann","asked":[1,2]}` {
		t.Fatalf("result %s", r)
	}
	ann.Send(t, `{"type":"rpc","id":5,"method":"nope"}`)
	ann.ExpectError(t, "bad_request", 5)
	ann.Send(t, `{"type":"rpc","id":6,"method":"kick"}`)
	if code := ann.ExpectClose(t, 5*time.Second); code != 4501 {
		t.Fatalf("close %d, want 4501", code)
	}

	logged, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`/connect {"client":"` + sid + `","remote":"`,
		`"headers":{},"cookies":{"session":"ann-cookie"}}`,
		`/subscribe {"client":"` + sid + `","user":"ann","channel":"private:bob"}`,
		`/publish {"client":"` + sid + `","user":"ann","channel":"shout:room","data":{"text":"hello"}}`,
		`/rpc {"client":"` + sid + `","user":"ann","method":"whoami","data":[1,2]}`,
	} {
		if !strings.Contains(string(logged), want) {
			t.Errorf("backend did not get %s; it got:\n%s", want, logged)
		}
	}
}

// TestServeRPCFromNode sends an rpc from Node's own WebSocket (no
// packages) to herald serve, answered by the Python backend.
func TestServeRPCFromNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is needed for this interop test: ", err)
	}
	const secret = "s3cret-for-hooks"
	backend, _ := startPythonBackend(t, secret)
	cmd := exec.Command(buildHerald(t), "serve", "--addr", "127.0.0.1:0", "--hook-rpc", backend+"/rpc")
	cmd.Env = append(os.Environ(), "HERALD_HOOK_SECRET="+secret)
	_, base := startServeCmd(t, cmd)
	script := `
const ws = new WebSocket(process.argv[1], "herald.v1");
ws.onmessage = (e) => {
  const f = JSON.parse(e.data);
  if (f.type === "welcome") ws.send(JSON.stringify({type: "rpc", id: 7, method: "whoami", data: {n: 1}}));
  else { console.log(JSON.stringify(f)); ws.close(); }
};
ws.onerror = (e) => { console.error(e.message); process.exit(1); };
`
	out, err := exec.Command(node, "--experimental-websocket", "-e", script, "ws"+strings.TrimPrefix(base, "http")+"/ws").CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), `{"type":"result","id":7,"data":{"user":"","asked":{"n":1}}}`; !strings.HasSuffix(got, want) {
		t.Fatalf("node got %s, want %s", got, want)
	}
}

// TestServeServerSideSubscriptionRecovered: the Go client takes the connect
// hook's channel as its own subscription, and after a reconnect gets what
// was published while it was away, once and in order.
func TestServeServerSideSubscriptionRecovered(t *testing.T) {
	const secret = "s3cret-for-hooks"
	backend, _ := startPythonBackend(t, secret)
	cmd := exec.Command(buildHerald(t), "serve", "--addr", "127.0.0.1:0", "--api-key", "k",
		"--hook-connect", backend+"/connect", "--hook-cookies", "session")
	cmd.Env = append(os.Environ(), "HERALD_HOOK_SECRET="+secret)
	_, base := startServeCmd(t, cmd)
	publish := func(n int) {
		req, _ := http.NewRequest("POST", base+"/api/publish", strings.NewReader(fmt.Sprintf(`{"channel":"private:ann","data":%d}`, n)))
		req.Header.Set("Authorization", "Bearer k")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("API publish %d: status %d", n, resp.StatusCode)
		}
	}

	var (
		mu       sync.Mutex
		conns    []net.Conn
		got      []string
		recovery = make(chan client.Recovery, 1)
		received = make(chan struct{}, 10)
		offline  = make(chan struct{}) // closed: dials fail
		online   = make(chan struct{}) // closed: dials work again
	)
	opts := &client.Options{
		Header: http.Header{"Cookie": {"session=ann-cookie"}},
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			select {
			case <-offline:
				select {
				case <-online:
				default:
					return nil, errors.New("offline")
				}
			default:
			}
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			return c, err
		},
		Backoff: client.Backoff{Base: 20 * time.Millisecond, Cap: 50 * time.Millisecond, Floor: 10 * time.Millisecond},
		OnServerSubscribe: func(ch string) (func(client.Message), []client.SubscribeOption) {
			return func(m client.Message) {
					mu.Lock()
					got = append(got, fmt.Sprintf("%s %d %s", m.Channel, m.Offset, m.Data))
					mu.Unlock()
					received <- struct{}{}
				}, []client.SubscribeOption{client.OnRecovery(func(r client.Recovery) {
					recovery <- r
				})}
		},
	}
	c, err := client.Dial(t.Context(), "ws"+strings.TrimPrefix(base, "http")+"/ws", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	next := func() {
		t.Helper()
		select {
		case <-received:
		case <-time.After(heraldtest.Timeout):
			t.Fatal("no message for the server-side subscription")
		}
	}
	publish(1)
	next()
	if s := c.Subscription("private:ann"); s == nil || s.Position().Offset != 1 {
		t.Fatalf("server-side subscription %v, want one at offset 1", s)
	}

	close(offline)
	mu.Lock()
	conns[0].Close()
	mu.Unlock()
	for c.State() == client.StateConnected {
		time.Sleep(5 * time.Millisecond)
	}
	publish(2)
	publish(3)
	close(online)
	select {
	case r := <-recovery:
		if !r.Recovered || r.Since.Offset != 1 {
			t.Fatalf("recovery %+v, want recovered from offset 1", r)
		}
	case <-time.After(heraldtest.Timeout):
		t.Fatal("the server-side subscription was not recovered after the reconnect")
	}
	next()
	next()
	publish(4)
	next()
	mu.Lock()
	defer mu.Unlock()
	want := []string{"private:ann 1 1", "private:ann 2 2", "private:ann 3 3", "private:ann 4 4"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("handler got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
