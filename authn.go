package herald

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/protocol"
)

// authenticateUpgrade identifies a connection from its upgrade request: the
// Authenticate hook first, then a token from the Authorization header or the
// token query parameter. ok is false when the request carried no
// credentials; err is set when it carried bad ones.
func (s *Server) authenticateUpgrade(r *http.Request) (id auth.Identity, ok bool, err error) {
	if s.opts.Authenticate != nil {
		ident, err := s.opts.Authenticate(r)
		if err != nil || ident != nil {
			return deref(ident), err == nil, err
		}
	}
	token := upgradeToken(r)
	if token == "" || s.opts.Tokens == nil {
		return auth.Identity{}, false, nil
	}
	id, err = s.opts.Tokens.Verify(token)
	return id, err == nil, err
}

func deref(id *auth.Identity) auth.Identity {
	if id == nil {
		return auth.Identity{}
	}
	return *id
}

func upgradeToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
	}
	return r.URL.Query().Get("token")
}

func (s *Server) anonymousAllowed() bool {
	switch s.opts.Anonymous {
	case AnonymousAllow:
		return true
	case AnonymousDeny:
		return false
	}
	return s.opts.Tokens == nil && s.opts.Authenticate == nil
}

// start sends welcome when the connection may begin, or arms the hello
// timeout when it must first authenticate with hello.
func (s *session) start() {
	if s.authed || s.srv.anonymousAllowed() {
		s.authed = true
		s.welcome(0)
		return
	}
	s.srv.heartbeat.setExpiry(s, time.Now().Add(s.srv.opts.HelloTimeout), true)
}

func (s *session) welcome(id uint64) {
	s.mu.Lock()
	s.userName = s.identity.User
	s.mu.Unlock()
	o := s.srv.opts
	s.send(&protocol.Welcome{
		ID:              id,
		Session:         s.id,
		Server:          "herald/" + Version,
		PingIntervalMS:  o.PingInterval.Milliseconds(),
		PongTimeoutMS:   o.PongTimeout.Milliseconds(),
		MaxMessageBytes: o.MaxMessageBytes,
		User:            s.identity.User,
		Rate:            o.Rate,
		Burst:           o.Burst,
	})
	s.srv.heartbeat.setExpiry(s, s.identity.ExpiresAt, false)
}

// user returns the connection's user, "" when anonymous.
func (s *session) user() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.userName
}

// hello authenticates a connection that is waiting for credentials, or an
// anonymous one that now brings a token.
func (s *session) hello(req *protocol.Hello) {
	switch {
	case s.authed && !s.identity.Anonymous():
		s.replyError(req.ID, protocol.CodeBadRequest, "connection is already authenticated")
		return
	case s.srv.opts.Tokens == nil:
		s.replyError(req.ID, protocol.CodeBadRequest, "this server does not accept tokens")
		return
	}
	id, err := s.srv.opts.Tokens.Verify(req.Token)
	if err != nil {
		if !s.authed {
			s.close(protocol.CloseUnauthorized, "invalid token", false)
			return
		}
		s.replyError(req.ID, protocol.CodeUnauthorized, tokenProblem(err))
		return
	}
	s.identity, s.authed = id, true
	s.welcome(req.ID)
}

// refresh replaces the connection's token with a newer one for the same user.
func (s *session) refresh(req *protocol.Refresh) {
	if s.srv.opts.Tokens == nil || s.identity.Anonymous() {
		s.replyError(req.ID, protocol.CodeUnauthorized, "connection has no token to refresh")
		return
	}
	id, err := s.srv.opts.Tokens.Verify(req.Token)
	switch {
	case err != nil:
		s.replyError(req.ID, protocol.CodeUnauthorized, tokenProblem(err))
		return
	case id.User != s.identity.User:
		s.replyError(req.ID, protocol.CodeForbidden, "refresh token names another user")
		return
	}
	s.identity = id
	s.srv.heartbeat.setExpiry(s, id.ExpiresAt, false)
	var exp int64
	if !id.ExpiresAt.IsZero() {
		exp = id.ExpiresAt.Unix()
	}
	if req.ID != 0 {
		s.send(&protocol.Refreshed{ID: req.ID, ExpiresAt: exp})
	}
}

// tokenProblem says why a token was refused, without echoing it.
func tokenProblem(err error) string {
	if errors.Is(err, auth.ErrInvalidToken) {
		return strings.TrimPrefix(err.Error(), "herald: ")
	}
	return "invalid token"
}

// authorize applies the rules for action on channel: the token's channel
// list, the namespace's access, then the Authorize hook.
func (s *session) authorize(action Action, channel string) *protocol.Error {
	id := s.identity
	if !id.Allows(channel) {
		return &protocol.Error{Code: protocol.CodeForbidden, Message: fmt.Sprintf("token does not allow %s to %s", action, channel)}
	}
	ns := s.srv.opts.Namespaces[protocol.Namespace(channel)]
	access := ns.Subscribe
	if action == ActionPublish {
		access = ns.Publish
	}
	switch access {
	case AccessNone:
		return &protocol.Error{Code: protocol.CodeForbidden, Message: fmt.Sprintf("%s to %s is not allowed", action, channel)}
	case AccessUsers:
		if id.Anonymous() {
			return &protocol.Error{Code: protocol.CodeUnauthorized, Message: fmt.Sprintf("%s to %s needs an authenticated connection", action, channel)}
		}
	}
	if s.srv.opts.Authorize != nil && !s.srv.opts.Authorize(id, action, channel) {
		return &protocol.Error{Code: protocol.CodeForbidden, Message: fmt.Sprintf("%s to %s is not allowed", action, channel)}
	}
	return nil
}

// throttlePing counts a client's ping frame against the request rate and,
// past it, pauses reading until the rate allows more: pings must be
// answered, but a ping flood gets no more of the server than the rate.
func (s *session) throttlePing() {
	if ok, wait := s.limiter.take(time.Now(), s.srv.opts.Rate, s.srv.opts.Burst); !ok {
		time.Sleep(wait)
	}
}

// bucket is a token bucket rate limiter, used by the reader goroutine only.
type bucket struct {
	tokens float64
	last   time.Time
}

// take spends one token, or reports how long until one is available.
func (b *bucket) take(now time.Time, rate float64, burst int) (bool, time.Duration) {
	if b.last.IsZero() {
		b.tokens = float64(burst)
	} else {
		b.tokens = min(float64(burst), b.tokens+now.Sub(b.last).Seconds()*rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
}
