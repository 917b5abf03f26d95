package herald

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/protocol"
)

func isUpgrade(r *http.Request) bool {
	return r.Method == http.MethodGet && headerHasToken(r.Header, "Upgrade", "websocket") &&
		headerHasToken(r.Header, "Connection", "upgrade")
}

// headerHasToken reports whether a comma-separated header holds token,
// compared without regard to case.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

// offersProtocol reports whether the client offers herald.v1 or offers no
// subprotocol at all.
func offersProtocol(r *http.Request) bool {
	offered := false
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			p = strings.TrimSpace(p)
			if p == protocol.Subprotocol {
				return true
			}
			offered = offered || p != ""
		}
	}
	return !offered
}

// hostAllowed applies the Host policy, against DNS rebinding: a page on a
// name the attacker controls, resolved to this server's address, sends a
// matching Host and Origin. Options.AllowedHosts lists the names clients may
// use; without it, a server that accepted the connection on a loopback
// address answers only to localhost, 127.0.0.1 and [::1], and any other
// server to every name.
func (s *Server) hostAllowed(r *http.Request) bool {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	allowed := s.opts.AllowedHosts
	if len(allowed) == 0 {
		if !acceptedOnLoopback(r) {
			return true
		}
		allowed = loopbackHosts
	}
	for _, pattern := range allowed {
		if matchHost(pattern, host) {
			return true
		}
	}
	return false
}

var loopbackHosts = []string{"localhost", "127.0.0.1", "::1"}

// acceptedOnLoopback reports whether the request came in on a loopback
// address of this machine.
func acceptedOnLoopback(r *http.Request) bool {
	addr, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	ap, err := netip.ParseAddrPort(addr.String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// matchHost matches a host name against "*", an exact name, or "*.example.com"
// (any name under example.com), without regard to case.
func matchHost(pattern, host string) bool {
	pattern = strings.Trim(strings.TrimSpace(pattern), "[]")
	if pattern == "*" || strings.EqualFold(pattern, host) {
		return true
	}
	suffix, ok := strings.CutPrefix(pattern, "*")
	return ok && strings.HasPrefix(suffix, ".") && len(host) > len(suffix) &&
		strings.EqualFold(host[len(host)-len(suffix):], suffix)
}

// originAllowed applies the Origin policy: no Origin (not a browser), the
// request's own host, or one of Options.AllowedOrigins.
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if u, err := url.Parse(origin); err == nil && strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, pattern := range s.opts.AllowedOrigins {
		if matchOrigin(pattern, origin) {
			return true
		}
	}
	return false
}

// refusedOrigin answers an upgrade whose Origin is not allowed with 403 and
// a body that says so, counts it, and warns in the log, once a minute per
// origin (see originWarnings), naming the origin and how to allow it.
func (s *Server) refusedOrigin(w http.ResponseWriter, r *http.Request) {
	s.metrics.upgradesRefused.WithLabelValues("origin").Inc()
	origin := r.Header.Get("Origin")
	if len(origin) > maxLoggedOrigin {
		origin = origin[:maxLoggedOrigin]
	}
	if s.originWarnings.due(origin, time.Now()) {
		s.log.Warn("upgrade refused: origin not allowed; allow it with --allowed-origins (Options.AllowedOrigins)",
			"origin", origin, "host", r.Host, "remote", r.RemoteAddr)
	}
	http.Error(w, "herald: origin "+strconv.Quote(origin)+" not allowed (the server allows more with --allowed-origins)", http.StatusForbidden)
}

// notUpgrade answers a request to the WebSocket endpoint that is not an
// upgrade: 426. A page's own request (the browser client makes one when its
// upgrade fails, to learn why) may read the answer: a refused origin gets its
// 403 with the reason, any other origin the 426, so that the page can tell a
// refused origin from a server that is down.
func (s *Server) notUpgrade(w http.ResponseWriter, r *http.Request) {
	if origin := r.Header.Get("Origin"); origin != "" {
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Add("Vary", "Origin")
		if !s.originAllowed(r) {
			s.refusedOrigin(w, r)
			return
		}
	}
	w.Header().Set("Upgrade", "websocket")
	http.Error(w, "herald: expected a WebSocket upgrade", http.StatusUpgradeRequired)
}

// maxLoggedOrigin bounds the part of an Origin header that is logged,
// echoed and remembered.
const maxLoggedOrigin = 200

// warnLimiter lets a warning about one key (a refused origin) through at
// most once per warnEvery. It remembers at most warnKeys keys: when that
// many were warned about within warnEvery, warnings about new keys are
// dropped until old ones age out, so that a client sending ever new keys
// can fill neither the memory nor the log.
type warnLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time
}

const (
	warnEvery = time.Minute
	warnKeys  = 256
)

// due reports whether a warning about key may be logged now, and if so
// records it.
func (l *warnLimiter) due(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if at, ok := l.last[key]; ok && now.Sub(at) < warnEvery {
		return false
	}
	if l.last == nil {
		l.last = make(map[string]time.Time)
	}
	if _, ok := l.last[key]; !ok && len(l.last) >= warnKeys {
		for k, at := range l.last {
			if now.Sub(at) >= warnEvery {
				delete(l.last, k)
			}
		}
		if len(l.last) >= warnKeys {
			return false
		}
	}
	l.last[key] = now
	return true
}

// matchOrigin matches an origin against "*", an exact origin, or a pattern
// with one '*' standing for one or more characters other than '/'
// ("https://*.example.com").
func matchOrigin(pattern, origin string) bool {
	if pattern == "*" || strings.EqualFold(pattern, origin) {
		return true
	}
	prefix, suffix, ok := strings.Cut(strings.ToLower(pattern), "*")
	origin = strings.ToLower(origin)
	if !ok || len(origin) <= len(prefix)+len(suffix) {
		return false
	}
	if !strings.HasPrefix(origin, prefix) || !strings.HasSuffix(origin, suffix) {
		return false
	}
	return !strings.Contains(origin[len(prefix):len(origin)-len(suffix)], "/")
}

// accept runs the checks after the connection limits and upgrades. It
// returns nil and the HTTP status to answer (0 when the upgrade itself
// failed and answered) when the connection is refused.
func (s *Server) accept(w http.ResponseWriter, r *http.Request) (*session, int, string) {
	if !offersProtocol(r) {
		return nil, http.StatusBadRequest, "herald: subprotocol herald.v1 required"
	}
	if ep := s.hooks.endpoints[hookConnect]; ep != nil {
		return s.acceptByHook(w, r, ep)
	}
	id, authed, err := s.authenticateUpgrade(r)
	if errors.Is(err, errHookPanicked) {
		return nil, http.StatusInternalServerError, "herald: internal error"
	}
	if err != nil {
		s.log.Info("upgrade refused: bad credentials", "remote", r.RemoteAddr, "err", err)
		return nil, http.StatusUnauthorized, "herald: invalid credentials"
	}
	if !authed && !s.anonymousAllowed() && s.opts.Tokens == nil {
		return nil, http.StatusUnauthorized, "herald: credentials required"
	}
	return s.upgrade(w, r, newSessionID(), id, authed)
}

// upgrade upgrades the connection of an accepted request and makes its
// session, sid, tracked but not yet open.
func (s *Server) upgrade(w http.ResponseWriter, r *http.Request, sid string, id auth.Identity, authed bool) (*session, int, string) {
	u := s.upgrader
	compressed := func() bool { return false }
	if s.opts.Compression {
		u.Negotiate, compressed = negotiateCompression()
	}
	conn, rw, _, err := u.Upgrade(r, w)
	if err != nil {
		s.log.Warn("upgrade failed", "remote", r.RemoteAddr, "err", err)
		return nil, 0, ""
	}
	sess := newSession(s, conn, rw.Reader, r.RemoteAddr, id, authed)
	sess.deflate = compressed()
	sess.id = sid
	if fd, raw := socketFD(conn); fd >= 0 && s.pollerStarted() != nil {
		sess.fd, sess.raw = fd, raw
		sess.readFn = sess.readReady
	}
	if !s.track(sess) {
		conn.Close()
		return nil, 0, ""
	}
	return sess, 0, ""
}
