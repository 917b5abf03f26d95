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
	"encoding/pem"
	"errors"
	"flag"
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

	resp, err := http.Get(base + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz: %v %v", resp, err)
	}
	resp.Body.Close()
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
	conn, _, _, err := ws.Dialer{Protocols: []string{"herald.v1"}}.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws")
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
	conn, _, _, err := d.Dial(ctx, "wss"+strings.TrimPrefix(base, "https")+"/ws")
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
	conn2, _, _, err := d.Dial(ctx, "wss"+strings.TrimPrefix(base, "https")+"/ws")
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
