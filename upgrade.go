package herald

import (
	"net/http"
	"net/url"
	"strings"

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
