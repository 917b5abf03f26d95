package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// buildHerald builds the binary once per test run.
func buildHerald(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "herald")
	out, err := exec.Command("go", "build", "-race", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startHerald runs "herald serve" on a free port and returns the process and
// its base URL (http://host:port).
func startHerald(t *testing.T, bin string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewScanner(stderr)
	re := regexp.MustCompile(`url=(https?://\S+)/`)
	for lines.Scan() {
		if m := re.FindStringSubmatch(lines.Text()); m != nil {
			go io.Copy(io.Discard, stderr)
			return cmd, m[1]
		}
	}
	t.Fatal("herald serve exited before it served")
	return nil, ""
}

func TestServeShutsDownGracefullyOnSIGTERM(t *testing.T) {
	bin := buildHerald(t)
	cmd, base := startHerald(t, bin, "--shutdown-timeout", "5s")

	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/metrics": "herald_connections"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("%s: %d %.200s", path, resp.StatusCode, body)
		}
	}
	page, err := http.Get(base + "/")
	if err != nil || page.StatusCode != 200 {
		t.Fatalf("/: %v %v", page, err)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if !strings.Contains(strings.ToLower(string(body)), "<title>herald") {
		t.Fatalf("start page: %.200s", body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := dialWS(ctx, ws.Dialer{Protocols: []string{"herald.v1"}}, "ws"+strings.TrimPrefix(base, "http")+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := wsutil.ReadServerText(conn); err != nil { // welcome
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = wsutil.ReadServerText(conn)
	var closed wsutil.ClosedError
	if !errors.As(err, &closed) || closed.Code != 1001 {
		t.Fatalf("after SIGTERM: %v, want close 1001", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("herald serve exit: %v, want status 0", err)
	}
}

func TestFlagsEnvironmentAndConfigFile(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "herald.yaml")
	os.WriteFile(cfg, []byte("ping-interval: 11s\npong-timeout: 12s\nmax-subscriptions: 7\nallowed-origins: [https://a.test, https://b.test]\n"), 0o600)
	t.Setenv("HERALD_PONG_TIMEOUT", "13s")
	t.Setenv("HERALD_CONFIG", cfg)

	var c serveConfig
	fs := serveFlags(stdio{out: io.Discard, err: io.Discard}, &c)
	if err := parseFlags(fs, []string{"--max-subscriptions", "9"}); err != nil {
		t.Fatal(err)
	}
	if c.opts.PingInterval != 11*time.Second {
		t.Errorf("ping-interval %v, want 11s from the file", c.opts.PingInterval)
	}
	if c.opts.PongTimeout != 13*time.Second {
		t.Errorf("pong-timeout %v, want 13s: the environment wins over the file", c.opts.PongTimeout)
	}
	if c.opts.MaxSubscriptions != 9 {
		t.Errorf("max-subscriptions %d, want 9: the flag wins", c.opts.MaxSubscriptions)
	}
	if c.allowedOrigins != "https://a.test,https://b.test" {
		t.Errorf("allowed-origins %q", c.allowedOrigins)
	}

	os.WriteFile(cfg, []byte("ping-intervall: 1s\n"), 0o600)
	fs = serveFlags(stdio{out: io.Discard, err: io.Discard}, &c)
	if err := parseFlags(fs, nil); err == nil || !strings.Contains(err.Error(), "ping-intervall") {
		t.Errorf("unknown config key: err %v", err)
	}
}

func TestHelpDocumentsEveryFlag(t *testing.T) {
	var out strings.Builder
	if code := run(context.Background(), stdio{out: &out, err: &out}, []string{"help", "serve"}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	var c serveConfig
	serveFlags(stdio{}, &c).VisitAll(func(f *flag.Flag) {
		if !strings.Contains(out.String(), "-"+f.Name) {
			t.Errorf("help serve does not mention --%s", f.Name)
		}
	})
	if code := run(context.Background(), stdio{out: io.Discard, err: io.Discard}, []string{"serve", "--no-such-flag"}); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key to dir.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "herald test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestServeTLSTokensAndNamespaces(t *testing.T) {
	bin := buildHerald(t)
	dir := t.TempDir()
	certFile, keyFile, pool := selfSignedCert(t, dir)
	cfg := filepath.Join(dir, "herald.yaml")
	os.WriteFile(cfg, []byte("jwt-secret: s3cret\nnamespaces:\n  news: {publish: none}\n"), 0o600)
	_, base := startHerald(t, bin, "--config", cfg, "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("served at %s, want https", base)
	}

	var tok strings.Builder
	if code := run(context.Background(), stdio{out: &tok, err: io.Discard}, []string{"token", "--secret", "s3cret", "--sub", "alice", "--channels", "news:*,chat:*"}); code != 0 {
		t.Fatalf("herald token exit %d", code)
	}
	d := ws.Dialer{
		Protocols: []string{"herald.v1"},
		TLSConfig: &tls.Config{RootCAs: pool},
		Header:    ws.HandshakeHeaderHTTP(http.Header{"Authorization": {"Bearer " + strings.TrimSpace(tok.String())}}),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := dialWS(ctx, d, "wss"+strings.TrimPrefix(base, "https")+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	welcome, _ := wsutil.ReadServerText(conn)
	if !strings.Contains(string(welcome), `"user":"alice"`) {
		t.Fatalf("welcome = %s", welcome)
	}
	for _, tc := range []struct{ req, want string }{
		{`{"type":"publish","id":1,"channel":"news:today","data":1}`, `"code":"forbidden"`}, // namespace rule
		{`{"type":"publish","id":2,"channel":"other","data":1}`, `"code":"forbidden"`},      // token channels
		{`{"type":"publish","id":3,"channel":"chat:x","data":1}`, `"type":"published"`},     // allowed
	} {
		wsutil.WriteClientText(conn, []byte(tc.req))
		reply, err := wsutil.ReadServerText(conn)
		if err != nil || !strings.Contains(string(reply), tc.want) {
			t.Fatalf("%s -> %s %v, want %s", tc.req, reply, err, tc.want)
		}
	}

	// Without a token (and anonymous off, since a key is set) the upgrade
	// is accepted but only hello may follow.
	d.Header = nil
	conn2, err := dialWS(ctx, d, "wss"+strings.TrimPrefix(base, "https")+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	conn2.SetDeadline(time.Now().Add(10 * time.Second))
	wsutil.WriteClientText(conn2, []byte(`{"type":"subscribe","id":1,"channel":"news:today"}`))
	if reply, _ := wsutil.ReadServerText(conn2); !strings.Contains(string(reply), `"code":"unauthorized"`) {
		t.Fatalf("anonymous subscribe -> %s", reply)
	}
}

// wsJSON is a minimal JSON-over-WebSocket client for the binary's tests.
type wsJSON struct {
	t    *testing.T
	conn net.Conn
}

func dialJSON(t *testing.T, base string) *wsJSON {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := dialWS(ctx, ws.Dialer{Protocols: []string{"herald.v1"}}, "ws"+strings.TrimPrefix(base, "http")+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &wsJSON{t, conn}
	c.read("welcome")
	return c
}

func (c *wsJSON) send(s string) {
	c.t.Helper()
	if err := wsutil.WriteClientText(c.conn, []byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *wsJSON) read(typ string) map[string]any {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	data, err := wsutil.ReadServerText(c.conn)
	if err != nil {
		c.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil || m["type"] != typ {
		c.t.Fatalf("got %s, want a %s frame", data, typ)
	}
	return m
}

func TestServeRestartWithDataDirRecovers(t *testing.T) {
	bin := buildHerald(t)
	dir := t.TempDir()
	cmd, base := startHerald(t, bin, "--data-dir", dir)

	sub := dialJSON(t, base)
	sub.send(`{"type":"subscribe","id":1,"channel":"room"}`)
	epoch := sub.read("subscribed")["epoch"].(string)
	pub := dialJSON(t, base)
	for i := 1; i <= 5; i++ {
		pub.send(fmt.Sprintf(`{"type":"publish","id":%d,"channel":"room","data":"m%d"}`, i, i))
		pub.read("published")
	}
	for i := 1; i <= 2; i++ { // the subscriber saw two, then went away
		if m := sub.read("message"); m["offset"] != float64(i) {
			t.Fatalf("message = %v", m)
		}
	}
	sub.conn.Close()

	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("herald serve exit: %v", err)
	}
	_, base = startHerald(t, bin, "--data-dir", dir)
	again := dialJSON(t, base)
	again.send(fmt.Sprintf(`{"type":"subscribe","id":2,"channel":"room","since":{"epoch":%q,"offset":2}}`, epoch))
	if s := again.read("subscribed"); s["recovered"] != true || s["epoch"] != epoch || s["offset"] != 5.0 {
		t.Fatalf("after restart: %v, want recovered:true at %s/5", s, epoch)
	}
	for i := 3; i <= 5; i++ {
		if m := again.read("message"); m["offset"] != float64(i) || m["data"] != fmt.Sprintf("m%d", i) {
			t.Fatalf("replayed %v, want m%d", m, i)
		}
	}
	again.send(`{"type":"ping","id":3}`)
	again.read("pong") // nothing replayed twice
}

func TestServeRestartWithoutDataDirStartsNewEpochs(t *testing.T) {
	bin := buildHerald(t)
	cmd, base := startHerald(t, bin)
	c := dialJSON(t, base)
	c.send(`{"type":"publish","id":1,"channel":"room","data":1}`)
	c.read("published")
	c.send(`{"type":"subscribe","id":2,"channel":"room"}`)
	epoch := c.read("subscribed")["epoch"].(string)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()

	_, base = startHerald(t, bin)
	again := dialJSON(t, base)
	again.send(fmt.Sprintf(`{"type":"subscribe","id":2,"channel":"room","since":{"epoch":%q,"offset":0}}`, epoch))
	if s := again.read("subscribed"); s["recovered"] != false || s["epoch"] == epoch {
		t.Fatalf("after restart without --data-dir: %v, want recovered:false with a new epoch", s)
	}
}

// dialWS dials and returns a conn whose reads start with whatever the
// dialer buffered after the handshake (the server's first frames may
// arrive with it).
func dialWS(ctx context.Context, d ws.Dialer, url string) (net.Conn, error) {
	conn, br, _, err := d.Dial(ctx, url)
	if err != nil || br == nil {
		return conn, err
	}
	return bufferedConn{conn, io.MultiReader(br, conn)}, nil
}

type bufferedConn struct {
	net.Conn
	r io.Reader
}

func (c bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
