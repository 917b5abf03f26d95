package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/broker"
)

// certPair makes a self-signed certificate for 127.0.0.1 named cn and
// returns it and its key as PEM.
func certPair(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
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
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

func writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// servedName is the common name of the certificate addr presents in a new
// TLS handshake.
func servedName(t *testing.T, addr string) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) // the test reads the certificate, trusts nothing
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// startTLSServe runs serve in-process over TLS with the pair in certFile and
// keyFile, looking for changed files every poll, and returns its address
// and log.
func startTLSServe(t *testing.T, certFile, keyFile string, poll time.Duration) (string, *syncBuffer) {
	t.Helper()
	var c serveConfig
	fs := serveFlags(stdio{out: io.Discard, err: io.Discard}, &c)
	if err := parseFlags(fs, []string{"--tls-cert", certFile, "--tls-key", keyFile}); err != nil {
		t.Fatal(err)
	}
	if err := c.finish(fs); err != nil {
		t.Fatal(err)
	}
	c.tlsPoll = poll
	log := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(log, nil))
	c.opts.Broker, c.opts.Logger = broker.NewMemory(nil), logger
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, &c, logger) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String(), log
}

// TestServeReloadsRenewedCertificate renews the certificate files under a
// running server, key last as a careless renewal might: while the pair does
// not match, the old certificate is served and the failure logged once;
// once it matches, new handshakes get the new certificate.
func TestServeReloadsRenewedCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	c1, k1 := certPair(t, "first")
	writeFile(t, certFile, c1)
	writeFile(t, keyFile, k1)
	addr, log := startTLSServe(t, certFile, keyFile, 20*time.Millisecond)
	if got := servedName(t, addr); got != "first" {
		t.Fatalf("served %q at start, want first", got)
	}

	c2, k2 := certPair(t, "second, renewed")
	writeFile(t, certFile, c2) // the key still belongs to the first
	waitFor(t, "the failed reload to be logged", func() bool { return strings.Contains(log.String(), "tls certificate not reloaded") })
	time.Sleep(200 * time.Millisecond) // ten more polls
	if got := servedName(t, addr); got != "first" {
		t.Fatalf("served %q with a mismatched pair on disk, want the previous certificate", got)
	}
	if n := strings.Count(log.String(), "tls certificate not reloaded"); n != 1 {
		t.Errorf("the same failed pair was logged %d times, want once:\n%s", n, log)
	}

	writeFile(t, keyFile, k2)
	waitFor(t, "the renewed certificate to be served", func() bool { return servedName(t, addr) == "second, renewed" })
	if !strings.Contains(log.String(), "tls certificate reloaded") {
		t.Errorf("the reload is not logged:\n%s", log)
	}
}

// TestServeReloadsCertificateOnSIGHUP replaces the certificate of a running
// herald serve with one whose files have the same size and modification
// time, which only SIGHUP can announce: after it, new handshakes get the
// new certificate and the process goes on serving.
func TestServeReloadsCertificateOnSIGHUP(t *testing.T) {
	bin := buildHerald(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	c1, k1 := certPair(t, "first")
	writeFile(t, certFile, c1)
	writeFile(t, keyFile, k1)
	cmd, base, log := startServeLog(t, exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", keyFile))
	addr := strings.TrimPrefix(base, "https://")
	if got := servedName(t, addr); got != "first" {
		t.Fatalf("served %q at start, want first", got)
	}

	before, err := os.Stat(certFile)
	if err != nil {
		t.Fatal(err)
	}
	c2, k2 := certPair(t, "other")
	for len(c2) != len(c1) { // ECDSA signatures vary in length by a byte or two
		c2, k2 = certPair(t, "other")
	}
	writeFile(t, certFile, c2)
	writeFile(t, keyFile, k2)
	for _, f := range []string{certFile, keyFile} {
		if err := os.Chtimes(f, before.ModTime(), before.ModTime()); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload to be logged", func() bool { return strings.Contains(log.String(), "tls certificate reloaded") })
	if got := servedName(t, addr); got != "other" {
		t.Fatalf("served %q after SIGHUP, want other", got)
	}
	if !strings.Contains(log.String(), `subject="CN=other"`) {
		t.Errorf("the reload does not name the new certificate:\n%s", log)
	}
}
