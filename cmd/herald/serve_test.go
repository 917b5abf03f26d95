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

	"github.com/heraldhq/herald/internal/heraldtest"
)

// buildHerald builds the binary once per test run.
func buildHerald(t *testing.T) string {
	t.Helper()
	bin, err := heraldtest.BuildHerald(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// startHerald runs "herald serve" on a free port and returns the process and
// its base URL (http://host:port).
func startHerald(t *testing.T, bin string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	return startServeCmd(t, exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...))
}

// startServeCmd starts cmd, a "herald serve", and returns it and its base
// URL once it serves.
func startServeCmd(t *testing.T, cmd *exec.Cmd) (*exec.Cmd, string) {
	t.Helper()
	cmd, base, _ := startServeLog(t, cmd)
	return cmd, base
}

// startServeLog is startServeCmd that also returns what cmd logs after it
// serves.
func startServeLog(t *testing.T, cmd *exec.Cmd) (*exec.Cmd, string, *syncBuffer) {
	t.Helper()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewScanner(stderr)
	re := regexp.MustCompile(`url=(https?://\S+)/`)
	for lines.Scan() {
		if m := re.FindStringSubmatch(lines.Text()); m != nil {
			var log syncBuffer
			go io.Copy(&log, stderr)
			return cmd, m[1], &log
		}
	}
	t.Fatal("herald serve exited before it served")
	return nil, "", nil
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

	conn := heraldtest.MustDial(t, wsOf(base), nil)
	if _, err := conn.Next(heraldtest.Timeout); err != nil { // welcome
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	_, err = conn.Next(10 * time.Second)
	var closed *heraldtest.CloseError
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
	o := &heraldtest.DialOptions{
		TLSConfig: &tls.Config{RootCAs: pool},
		Header:    http.Header{"Authorization": {"Bearer " + strings.TrimSpace(tok.String())}},
	}
	conn := heraldtest.MustDial(t, wsOf(base), o)
	welcome, _ := conn.Next(heraldtest.Timeout)
	if !strings.Contains(welcome.String(), `"user":"alice"`) {
		t.Fatalf("welcome = %s", welcome)
	}
	for _, tc := range []struct{ req, want string }{
		{`{"type":"publish","id":1,"channel":"news:today","data":1}`, `"code":"forbidden"`}, // namespace rule
		{`{"type":"publish","id":2,"channel":"other","data":1}`, `"code":"forbidden"`},      // token channels
		{`{"type":"publish","id":3,"channel":"chat:x","data":1}`, `"type":"published"`},     // allowed
	} {
		conn.Send(t, tc.req)
		reply, err := conn.Next(heraldtest.Timeout)
		if err != nil || !strings.Contains(reply.String(), tc.want) {
			t.Fatalf("%s -> %s %v, want %s", tc.req, reply, err, tc.want)
		}
	}

	// Without a token (and anonymous off, since a key is set) the upgrade
	// is accepted but only hello may follow.
	o.Header = nil
	conn2 := heraldtest.MustDial(t, wsOf(base), o)
	conn2.Send(t, `{"type":"subscribe","id":1,"channel":"news:today"}`)
	if reply, _ := conn2.Next(heraldtest.Timeout); !strings.Contains(reply.String(), `"code":"unauthorized"`) {
		t.Fatalf("anonymous subscribe -> %s", reply)
	}
}

// wsOf returns the WebSocket URL of a server at base (http:// or
// https://).
func wsOf(base string) string { return "ws" + strings.TrimPrefix(base, "http") + "/ws" }

func TestServeRestartWithDataDirRecovers(t *testing.T) {
	bin := buildHerald(t)
	dir := t.TempDir()
	cmd, base := startHerald(t, bin, "--data-dir", dir)

	sub := heraldtest.DialWelcome(t, wsOf(base), nil)
	sub.Send(t, `{"type":"subscribe","id":1,"channel":"room"}`)
	epoch := sub.Expect(t, "subscribed").Fields()["epoch"].(string)
	pub := heraldtest.DialWelcome(t, wsOf(base), nil)
	for i := 1; i <= 5; i++ {
		pub.Send(t, fmt.Sprintf(`{"type":"publish","id":%d,"channel":"room","data":"m%d"}`, i, i))
		pub.Expect(t, "published")
	}
	for i := 1; i <= 2; i++ { // the subscriber saw two, then went away
		if m := sub.Expect(t, "message").Fields(); m["offset"] != float64(i) {
			t.Fatalf("message = %v", m)
		}
	}
	sub.Close()

	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("herald serve exit: %v", err)
	}
	_, base = startHerald(t, bin, "--data-dir", dir)
	again := heraldtest.DialWelcome(t, wsOf(base), nil)
	again.Send(t, fmt.Sprintf(`{"type":"subscribe","id":2,"channel":"room","since":{"epoch":%q,"offset":2}}`, epoch))
	if s := again.Expect(t, "subscribed").Fields(); s["recovered"] != true || s["epoch"] != epoch || s["offset"] != 5.0 {
		t.Fatalf("after restart: %v, want recovered:true at %s/5", s, epoch)
	}
	for i := 3; i <= 5; i++ {
		if m := again.Expect(t, "message").Fields(); m["offset"] != float64(i) || m["data"] != fmt.Sprintf("m%d", i) {
			t.Fatalf("replayed %v, want m%d", m, i)
		}
	}
	again.Send(t, `{"type":"ping","id":3}`)
	again.Expect(t, "pong") // nothing replayed twice
}

func TestServeRestartWithoutDataDirStartsNewEpochs(t *testing.T) {
	bin := buildHerald(t)
	cmd, base := startHerald(t, bin)
	c := heraldtest.DialWelcome(t, wsOf(base), nil)
	c.Send(t, `{"type":"publish","id":1,"channel":"room","data":1}`)
	c.Expect(t, "published")
	c.Send(t, `{"type":"subscribe","id":2,"channel":"room"}`)
	epoch := c.Expect(t, "subscribed").Fields()["epoch"].(string)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()

	_, base = startHerald(t, bin)
	again := heraldtest.DialWelcome(t, wsOf(base), nil)
	again.Send(t, fmt.Sprintf(`{"type":"subscribe","id":2,"channel":"room","since":{"epoch":%q,"offset":0}}`, epoch))
	if s := again.Expect(t, "subscribed").Fields(); s["recovered"] != false || s["epoch"] == epoch {
		t.Fatalf("after restart without --data-dir: %v, want recovered:false with a new epoch", s)
	}
}
