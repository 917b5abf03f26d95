package client_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/golang-jwt/jwt/v5"
	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/protocol"
)

// fakeServer is a scripted server on in-memory pipes, for the client's timing
// tests under testing/synctest, where real sockets cannot be used. It speaks
// the wire protocol just enough to drive the client; it is not Herald, and
// nothing here claims anything about the server.
type fakeServer struct {
	t *testing.T
	// script runs each accepted connection; n counts connections from 0.
	// nil means welcome and answer until the client leaves.
	script func(n int, s *fakeSession)
	// refuse, when set, fails dial number n (counting all dials from 0).
	refuse func(n int) bool
	// interval and timeout go into welcome; zero means 25 s and 15 s.
	interval, timeout time.Duration
	// refresh answers a refresh request on connection n; nil means refreshed
	// with the new token's exp. A nil answer sends nothing.
	refresh func(n int, req *protocol.Refresh) protocol.Frame

	mu       sync.Mutex
	dials    []time.Time // when each dial happened
	accepted int
	tokens   []string // Authorization header of each accepted upgrade
	sessions []*fakeSession
}

func (f *fakeServer) options(o *client.Options) *client.Options {
	if o == nil {
		o = &client.Options{}
	}
	o.NetDial = f.dial
	return o
}

func (f *fakeServer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	f.mu.Lock()
	n := len(f.dials)
	f.dials = append(f.dials, time.Now())
	f.mu.Unlock()
	if f.refuse != nil && f.refuse(n) {
		return nil, errors.New("connection refused (fake)")
	}
	cli, srv := net.Pipe()
	go f.serve(srv)
	return cli, nil
}

func (f *fakeServer) serve(nc net.Conn) {
	defer nc.Close()
	var auth string
	u := ws.Upgrader{
		Protocol: func(p []byte) bool { return string(p) == protocol.Subprotocol },
		OnHeader: func(k, v []byte) error {
			if string(k) == "Authorization" {
				auth = string(v)
			}
			return nil
		},
	}
	if _, err := u.Upgrade(nc); err != nil {
		return
	}
	f.mu.Lock()
	n := f.accepted
	f.accepted++
	f.tokens = append(f.tokens, auth)
	f.mu.Unlock()
	s := newFakeSession(nc, func(s *fakeSession) {
		s.token = strings.TrimPrefix(auth, "Bearer ")
		s.exp, _ = jwtExpiry(s.token)
		if f.refresh != nil {
			s.onRefresh = func(req *protocol.Refresh) protocol.Frame { return f.refresh(n, req) }
		}
	})
	f.mu.Lock()
	f.sessions = append(f.sessions, s)
	f.mu.Unlock()
	script := f.script
	if script == nil {
		script = func(int, *fakeSession) {}
	}
	s.welcome(cmp.Or(f.interval, 25*time.Second), cmp.Or(f.timeout, 15*time.Second))
	script(n, s)
	<-s.gone
}

func (f *fakeServer) dialTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.dials...)
}

func (f *fakeServer) upgradeTokens() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.tokens...)
}

// fakeSession is one connection of a fakeServer. Its reader answers
// requests (subscribe at offset 0 of epoch "e1", publish with increasing
// offsets, ping) unless silent is set, and records every frame.
type fakeSession struct {
	nc   net.Conn
	wmu  sync.Mutex
	gone chan struct{}

	in chan protocol.Frame // every frame received, for scripts
	// extra holds the history and presence requests, as JSON objects, for
	// scripts to answer.
	extra chan map[string]any

	onRefresh func(*protocol.Refresh) protocol.Frame // see fakeServer.refresh

	mu       sync.Mutex
	silent   bool
	offset   uint64
	received []protocol.Frame
	payloads []string // every text frame received, as sent
	arrived  []time.Time
	token    string    // the token of the upgrade or of the last refresh
	exp      time.Time // token's exp, zero when none
}

// newFakeSession starts reading nc after setup.
func newFakeSession(nc net.Conn, setup ...func(*fakeSession)) *fakeSession {
	s := &fakeSession{nc: nc, gone: make(chan struct{}), in: make(chan protocol.Frame, 1000),
		extra: make(chan map[string]any, 1000)}
	for _, f := range setup {
		f(s)
	}
	go s.read()
	return s
}

func (s *fakeSession) read() {
	defer close(s.gone)
	for {
		data, op, err := wsutil.ReadClientData(s.nc)
		if err != nil {
			s.nc.Close()
			return
		}
		if op != ws.OpText {
			continue
		}
		s.mu.Lock()
		s.payloads = append(s.payloads, string(data))
		s.mu.Unlock()
		f, err := protocol.Decode(data)
		if err != nil {
			continue
		}
		switch f.(type) {
		case *protocol.History, *protocol.Presence:
			var obj map[string]any
			json.Unmarshal(data, &obj)
			s.extra <- obj
			continue
		}
		s.mu.Lock()
		s.received = append(s.received, f)
		s.arrived = append(s.arrived, time.Now())
		silent := s.silent
		s.mu.Unlock()
		if !silent {
			s.answer(f) // before the script sees f, so that what it sends comes after
		}
		s.in <- f
	}
}

func (s *fakeSession) answer(f protocol.Frame) {
	switch f := f.(type) {
	case *protocol.Subscribe:
		s.send(&protocol.Subscribed{ID: f.ID, Channel: f.Channel, Epoch: "e1"})
	case *protocol.Publish:
		s.mu.Lock()
		s.offset++
		off := s.offset
		s.mu.Unlock()
		s.send(&protocol.Published{ID: f.ID, Channel: f.Channel, Offset: off})
	case *protocol.Ping:
		s.send(&protocol.Pong{ID: f.ID})
	case *protocol.Unsubscribe:
		s.send(&protocol.Unsubscribed{ID: f.ID, Channel: f.Channel})
	case *protocol.Refresh:
		exp, ok := jwtExpiry(f.Token)
		refreshed := &protocol.Refreshed{ID: f.ID}
		if ok {
			refreshed.ExpiresAt = exp.Unix()
		}
		var reply protocol.Frame = refreshed
		if s.onRefresh != nil {
			reply = s.onRefresh(f)
		}
		if _, ok := reply.(*protocol.Refreshed); ok {
			s.mu.Lock()
			s.token, s.exp = f.Token, exp
			s.mu.Unlock()
		}
		if reply != nil {
			s.send(reply)
		}
	}
}

// expiry returns the exp of the connection's current token.
func (s *fakeSession) expiry() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exp
}

// enforceExpiry closes the connection with 4001 when its token expires
// before a refresh replaced it, as Herald does. It returns when the
// connection ends.
func (s *fakeSession) enforceExpiry() {
	for {
		exp := s.expiry()
		if exp.IsZero() {
			<-s.gone
			return
		}
		t := time.NewTimer(time.Until(exp))
		select {
		case <-t.C:
			if !s.expiry().After(exp) {
				s.closeWith(protocol.CloseUnauthorized)
				return
			}
		case <-s.gone:
			t.Stop()
			return
		}
	}
}

// jwtExpiry reads a JWT's exp claim without checking anything else.
func jwtExpiry(token string) (time.Time, bool) {
	var c jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil || c.ExpiresAt == nil {
		return time.Time{}, false
	}
	return c.ExpiresAt.Time, true
}

// next returns the next frame of type typ the client sent, skipping others;
// typ "" takes any frame.
func (s *fakeSession) next(t *testing.T, typ string) protocol.Frame {
	t.Helper()
	for {
		select {
		case f := <-s.in:
			if typ == "" || f.Type() == typ {
				return f
			}
		case <-s.gone:
			t.Fatalf("connection ended while waiting for %s", typ)
		}
	}
}

// nextOrGone is next that reports false when the connection ends first.
func (s *fakeSession) nextOrGone(typ string) (protocol.Frame, bool) {
	for {
		select {
		case f := <-s.in:
			if f.Type() == typ {
				return f, true
			}
		case <-s.gone:
			return nil, false
		}
	}
}

// framesOf returns the frames of type typ the client sent, with the times
// they arrived.
func (s *fakeSession) framesOf(typ string) ([]protocol.Frame, []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var fs []protocol.Frame
	var at []time.Time
	for i, f := range s.received {
		if f.Type() == typ {
			fs = append(fs, f)
			at = append(at, s.arrived[i])
		}
	}
	return fs, at
}

func (s *fakeSession) setSilent(v bool) {
	s.mu.Lock()
	s.silent = v
	s.mu.Unlock()
}

func (s *fakeSession) frames() []protocol.Frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]protocol.Frame(nil), s.received...)
}

// nextExtra returns the next history or presence request of type typ,
// skipping others.
func (s *fakeSession) nextExtra(t *testing.T, typ string) map[string]any {
	t.Helper()
	for {
		select {
		case f := <-s.extra:
			if f["type"] == typ {
				return f
			}
		case <-s.gone:
			t.Fatalf("connection ended while waiting for %s", typ)
		}
	}
}

// payloadsOf returns the text frames of type typ the client sent, as sent.
func (s *fakeSession) payloadsOf(typ string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, p := range s.payloads {
		if strings.Contains(p, `"type":"`+typ+`"`) {
			out = append(out, p)
		}
	}
	return out
}

// sendRaw sends one text frame as it is.
func (s *fakeSession) sendRaw(frame string) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	wsutil.WriteServerText(s.nc, []byte(frame))
}

func (s *fakeSession) send(f protocol.Frame) {
	b, err := protocol.Encode(f)
	if err != nil {
		panic(err)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	wsutil.WriteServerText(s.nc, b)
}

func (s *fakeSession) welcome(interval, timeout time.Duration) {
	s.send(&protocol.Welcome{Session: "s1", Server: "fake",
		PingIntervalMS: interval.Milliseconds(), PongTimeoutMS: timeout.Milliseconds(),
		MaxMessageBytes: 64 << 10})
}

// closeWith sends a close frame with code and then drops the connection.
func (s *fakeSession) closeWith(code protocol.CloseCode) {
	s.wmu.Lock()
	ws.WriteFrame(s.nc, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusCode(code), "")))
	s.wmu.Unlock()
	s.nc.Close()
}

// drop ends the connection abruptly, without a close frame.
func (s *fakeSession) drop() { s.nc.Close() }
