package main

import (
	"crypto/tls"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/heraldtest/testnode"
)

// startTLSHerald serves Herald on wss:// with httptest's certificate and
// writes that certificate as PEM to a file.
func startTLSHerald(t *testing.T) (url, caFile string) {
	t.Helper()
	n := testnode.New(t, herald.Options{})
	n.TLS = &tls.Config{}
	n.Start()
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	block := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: n.Certificate().Raw})
	if err := os.WriteFile(caFile, block, 0o600); err != nil {
		t.Fatal(err)
	}
	return n.URL(), caFile
}

// TestSubPubOverTLS runs sub and pub against a wss:// server whose
// certificate they trust through --ca-file: sub prints what pub published.
func TestSubPubOverTLS(t *testing.T) {
	url, caFile := startTLSHerald(t)
	var subOut, subErr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- runCmd(t.Context(), "", &subOut, &subErr, "sub", "--url", url, "--ca-file", caFile, "--count", "1", "chan")
	}()
	waitFor(t, "sub to subscribe", func() bool { return strings.Contains(subErr.String(), "subscribed to chan") })

	var pubOut, pubErr syncBuffer
	if c := runCmd(t.Context(), "", &pubOut, &pubErr, "pub", "--url", url, "--ca-file", caFile, "chan", "1"); c != 0 {
		t.Fatalf("pub over wss://: exit %d, stderr %q", c, pubErr.String())
	}
	if got := pubOut.String(); got != `{"channel":"chan","offset":1}`+"\n" {
		t.Errorf("pub printed %q", got)
	}
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("sub over wss://: exit %d, stderr %q", c, subErr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sub did not exit after its one message")
	}
	if got := subOut.String(); got != `{"channel":"chan","offset":1,"data":1}`+"\n" {
		t.Errorf("sub printed %q", got)
	}
	if !strings.Contains(subErr.String(), "connected to "+url) {
		t.Errorf("sub stderr %q does not report the connection", subErr.String())
	}
}

// TestSubPubUntrustedCertificate runs sub and pub against a wss:// server
// whose certificate the system roots do not trust, or with --ca-file naming
// another CA: both exit 1 at once, saying that the certificate failed
// verification, and, without --ca-file, that the flag exists. A --ca-file
// with no certificate in it is a usage error.
func TestSubPubUntrustedCertificate(t *testing.T) {
	url, _ := startTLSHerald(t)
	otherCA, _, _ := selfSignedCert(t, t.TempDir())
	for _, tc := range []struct {
		name string
		args []string
		hint bool // stderr points to --ca-file
	}{
		{"pub system roots", []string{"pub", "--url", url, "chan", "1"}, true},
		{"sub system roots", []string{"sub", "--url", url, "chan"}, true},
		{"pub other CA", []string{"pub", "--url", url, "--ca-file", otherCA, "chan", "1"}, false},
		{"sub other CA", []string{"sub", "--url", url, "--ca-file", otherCA, "chan"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut syncBuffer
			start := time.Now()
			c := runCmd(t.Context(), "", &out, &errOut, tc.args...)
			msg := errOut.String()
			if c != 1 || !strings.Contains(msg, "failed to verify certificate") {
				t.Errorf("exit %d, stderr %q; want 1 and the certificate error", c, msg)
			}
			if strings.Contains(msg, "--ca-file") != tc.hint {
				t.Errorf("stderr %q: mention of --ca-file is %v, want %v", msg, !tc.hint, tc.hint)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v to give up", d)
			}
			if out.String() != "" {
				t.Errorf("stdout %q, want nothing", out.String())
			}
		})
	}

	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600)
	for _, cmd := range [][]string{
		{"pub", "--url", url, "--ca-file", notPEM, "chan", "1"},
		{"sub", "--url", url, "--ca-file", filepath.Join(t.TempDir(), "missing.pem"), "chan"},
	} {
		var out, errOut syncBuffer
		if c := runCmd(t.Context(), "", &out, &errOut, cmd...); c != 2 || !strings.Contains(errOut.String(), "--ca-file") {
			t.Errorf("%s with a bad --ca-file: exit %d, stderr %q; want 2 and the flag named", cmd[0], c, errOut.String())
		}
	}
}
