package herald

import (
	"errors"
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
		ident, err := s.callAuthenticate(r)
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

// errHookPanicked is what a panic in the Authenticate hook becomes.
var errHookPanicked = errors.New("herald: Authenticate hook panicked")

// callAuthenticate runs the Authenticate hook, turning a panic into an error
// so that the upgrade is refused and its connection slot released.
func (s *Server) callAuthenticate(r *http.Request) (id *auth.Identity, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic in Authenticate hook", "remote", r.RemoteAddr, "panic", p)
			id, err = nil, errHookPanicked
		}
	}()
	return s.opts.Authenticate(r)
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
		s.subscribeServerSide()
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
			s.close(protocol.CloseUnauthorized, "invalid token")
			return
		}
		s.replyError(req.ID, protocol.CodeUnauthorized, tokenProblem(err))
		return
	}
	s.identity, s.authed = id, true
	s.hooked.Store(false) // the token's expiry now, not the connect hook's
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
	s.dropForbidden()
	var exp int64
	if !id.ExpiresAt.IsZero() {
		exp = id.ExpiresAt.Unix()
	}
	if req.ID != 0 {
		s.send(&protocol.Refreshed{ID: req.ID, ExpiresAt: exp})
	}
}

// dropForbidden ends the subscriptions the connection's identity no longer
// allows (after a refresh to a token with narrower channels), telling the
// client with an unsubscribed frame that carries the reason.
func (s *session) dropForbidden() {
	for _, ch := range s.channels() {
		if e := s.authorize(ActionSubscribe, ch); e != nil {
			s.dropSubscription(ch)
			s.send(&protocol.Unsubscribed{Channel: ch, Reason: e.Message})
		}
	}
}

// tokenProblem says why a token was refused, without echoing it.
func tokenProblem(err error) string {
	if errors.Is(err, auth.ErrInvalidToken) {
		return strings.TrimPrefix(err.Error(), "herald: ")
	}
	return "invalid token"
}
