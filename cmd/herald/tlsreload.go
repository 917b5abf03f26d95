package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// certPollInterval is how often serve looks at --tls-cert and --tls-key for
// a change when nothing signals one.
const certPollInterval = 10 * time.Second

// certReloader holds the certificate of --tls-cert and --tls-key for
// tls.Config.GetCertificate and loads the files again on request, so that
// a renewed certificate is served without a restart. A pair that fails to
// load leaves the current certificate in place. Its methods are safe for
// concurrent use.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	cert              atomic.Pointer[tls.Certificate]

	mu     sync.Mutex // serialises loads; guards loaded and failed
	loaded fileStamp  // of the files the current certificate came from
	failed fileStamp  // of the last files that failed to load, logged once
}

// fileStamp tells whether the certificate or key file changed: a renewal
// writes new files or moves a symbolic link to them, and either changes
// the modification time or size of what the name leads to.
type fileStamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

func stampOf(certFile, keyFile string) fileStamp {
	var s fileStamp
	if fi, err := os.Stat(certFile); err == nil {
		s.certMod, s.certSize = fi.ModTime(), fi.Size()
	}
	if fi, err := os.Stat(keyFile); err == nil {
		s.keyMod, s.keySize = fi.ModTime(), fi.Size()
	}
	return s
}

// newCertReloader loads the pair once; an error here stops serve.
func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	stamp := stampOf(certFile, keyFile)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	r.cert.Store(&cert)
	r.loaded = stamp
	return r, nil
}

// GetCertificate returns the certificate loaded last.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// reload loads the pair again when force is set or the files changed since
// the last load, and logs the outcome. A failure is logged once per change
// of the files, and retried at the next call.
func (r *certReloader) reload(force bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamp := stampOf(r.certFile, r.keyFile)
	if !force && (stamp == r.loaded || stamp == r.failed) {
		return
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		if force || stamp != r.failed {
			r.log.Error("tls certificate not reloaded: still serving the previous one", "cert", r.certFile, "key", r.keyFile, "err", err)
		}
		r.failed = stamp
		return
	}
	r.cert.Store(&cert)
	r.loaded, r.failed = stamp, fileStamp{}
	attrs := []any{"cert", r.certFile}
	if leaf, err := x509.ParseCertificate(cert.Certificate[0]); err == nil {
		attrs = append(attrs, "subject", leaf.Subject.String(), "not_after", leaf.NotAfter.UTC())
	}
	r.log.Info("tls certificate reloaded", attrs...)
}

// watch reloads the pair on SIGHUP and, every poll, when the files
// changed, until the returned function is called; that function returns
// once watching has stopped.
func (r *certReloader) watch(poll time.Duration) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(poll)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				r.reload(true)
			case <-tick.C:
				r.reload(false)
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		cancel()
		<-done
	}
}
