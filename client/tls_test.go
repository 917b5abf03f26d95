package client_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest/testnode"
)

// startTLSNode starts a Herald server on wss:// with the certificate of cfg
// (httptest's own when cfg has none).
func startTLSNode(t *testing.T, opts herald.Options, cfg *tls.Config) *testnode.Node {
	t.Helper()
	n := testnode.New(t, opts)
	n.TLS = cfg
	n.Start()
	return n
}

// trusting returns a TLS configuration whose only root is n's certificate.
func trusting(n *testnode.Node) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(n.Certificate())
	return &tls.Config{RootCAs: pool}
}

// otherCert returns a new self-signed certificate for 127.0.0.1.
func otherCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "other"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestUntrustedCertificateStopsDial dials a wss:// server whose certificate
// the client does not trust: Dial fails at once with the verification
// error instead of retrying until its context ends. Trusting the
// certificate through Options.TLSConfig, it connects, subscribes and
// publishes.
func TestUntrustedCertificateStopsDial(t *testing.T) {
	n := startTLSNode(t, herald.Options{}, &tls.Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := client.Dial(ctx, n.URL(), nil)
	var cv *tls.CertificateVerificationError
	if !errors.As(err, &cv) {
		t.Fatalf("Dial with system roots: %v, want a *tls.CertificateVerificationError", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Dial took %v to give up on an untrusted certificate", d)
	}
	if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("error %q does not say it is about the certificate", err)
	}

	c := dialClient(t, n.URL(), &client.Options{TLSConfig: trusting(n)})
	got := make(chan client.Message, 1)
	if _, err := c.Subscribe(t.Context(), "chat", func(m client.Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(t.Context(), "chat", "over tls"); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if string(m.Data) != `"over tls"` {
			t.Errorf("got %s", m.Data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message over wss://")
	}
}

// TestCertificateErrorAfterWelcomeRetried restarts a server that the client
// was connected to with a certificate the client does not trust, as a
// botched certificate rotation would, and then with the trusted one again:
// the client keeps retrying through the certificate errors and comes back.
func TestCertificateErrorAfterWelcomeRetried(t *testing.T) {
	n := startTLSNode(t, herald.Options{}, &tls.Config{})
	trusted := trusting(n)
	var mu sync.Mutex
	var certErrors int
	st := newStates()
	c := dialClient(t, n.URL(), &client.Options{
		TLSConfig: trusted,
		Backoff:   client.Backoff{Base: 50 * time.Millisecond, Cap: 200 * time.Millisecond},
		OnStateChange: func(ch client.StateChange) {
			var cv *tls.CertificateVerificationError
			if ch.State == client.StateDisconnected && errors.As(ch.Err, &cv) {
				mu.Lock()
				certErrors++
				mu.Unlock()
			}
			st.record(ch)
		},
	})
	n.Kill()
	n.TLS = &tls.Config{Certificates: []tls.Certificate{otherCert(t)}}
	n.Start()
	eventually(t, 10*time.Second, "three certificate errors", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return certErrors >= 3
	})
	select {
	case <-c.Done():
		t.Fatalf("client stopped on a certificate error after its first welcome: %v", c.Err())
	default:
	}
	n.Kill()
	n.TLS = &tls.Config{}
	n.Start()
	st.await(t, client.StateConnected, 10*time.Second)
}
