package herald

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/protocol"
)

// handle decodes and serves one request. Every failure is answered with an
// error frame and counted; the connection stays open until too many pile up.
func (s *session) handle(data []byte) {
	f, err := protocol.Decode(data)
	if err != nil {
		s.flushPublishes()
		var perr *protocol.Error
		if !errors.As(err, &perr) {
			perr = &protocol.Error{Code: protocol.CodeBadRequest, Message: err.Error()}
		}
		s.reply(perr)
		return
	}
	if _, ok := f.(*protocol.Publish); !ok {
		s.flushPublishes() // served in order: the publishes before it first
	}
	var id uint64
	if r, ok := f.(protocol.Request); ok {
		id = r.RequestID()
	}
	if ok, wait := s.limiter.take(time.Now(), s.srv.opts.Rate, s.srv.opts.Burst); !ok {
		s.srv.metrics.rateLimitedReplies.Inc()
		s.flushPublishes()
		s.reply(&protocol.Error{ID: id, Code: protocol.CodeRateLimited, Message: "too many requests", RetryAfterMS: max(wait.Milliseconds(), 1)})
		// Read nothing more until the client may send again: a flood then
		// costs the server no more than the rate allows.
		time.Sleep(wait)
		return
	}
	if hello, ok := f.(*protocol.Hello); ok {
		s.hello(hello)
		return
	}
	if !s.authed {
		s.replyError(id, protocol.CodeUnauthorized, "send hello with a token first")
		return
	}
	ctx, cancel := context.WithTimeout(s.srv.ctx, s.srv.opts.WriteTimeout)
	defer cancel()
	switch req := f.(type) {
	case *protocol.Subscribe:
		s.subscribe(ctx, req)
	case *protocol.Unsubscribe:
		s.unsubscribe(ctx, req)
	case *protocol.Publish:
		s.publish(ctx, req)
	case *protocol.Ping:
		s.send(&protocol.Pong{ID: req.ID})
	case *protocol.Refresh:
		s.refresh(req)
	case *protocol.RPC:
		s.rpc(req)
	case *protocol.Presence:
		s.presenceRequest(ctx, req)
	case *protocol.History:
		s.history(ctx, req)
	default:
		s.replyError(id, protocol.CodeUnknownType, f.Type()+" is not a client request")
	}
}

func (s *session) publish(ctx context.Context, req *protocol.Publish) {
	if e := s.authorize(ActionPublish, req.Channel); e != nil {
		e.ID = req.ID
		s.flushPublishes()
		s.reply(e)
		return
	}
	if s.srv.hooks.endpoint(hookPublish, protocol.Namespace(req.Channel)) != nil {
		s.flushPublishes() // the hook may take long, or refuse
	}
	data, ok := s.publishData(req)
	if !ok {
		return
	}
	start := time.Now()
	if ok, wait := s.publishAllowed(start, len(data)); !ok {
		s.srv.metrics.rateLimitedReplies.Inc()
		s.flushPublishes()
		s.reply(&protocol.Error{ID: req.ID, Code: protocol.CodeRateLimited, Message: "too many bytes published; slow down", RetryAfterMS: max(wait.Milliseconds(), 1)})
		return
	}
	r := broker.PublishRequest{Channel: req.Channel, Data: data, Opts: broker.PublishOptions{Key: s.keyScope().of(req.Key), From: s.member()}}
	if s.queuePublish(req.ID, r, start) {
		return
	}
	pos, err := s.srv.broker.Publish(ctx, r.Channel, r.Data, r.Opts)
	observeSince(s.srv.metrics.publishSeconds, start)
	s.published(req.ID, req.Channel, pos, err)
}

// brokerError answers a request the broker could not serve. It is not the
// client's fault, so it does not count towards the bad-request limit.
func (s *session) brokerError(id uint64, op string, err error) {
	e := s.srv.brokerProblem(op, err, "session", s.id)
	e.ID = id
	s.send(e)
	s.srv.metrics.errors.WithLabelValues(string(e.Code)).Inc()
}

func (s *session) replyError(id uint64, code protocol.Code, msg string) {
	s.reply(&protocol.Error{ID: id, Code: code, Message: msg})
}

// reply sends an error frame and closes the connection with 4029 once
// Options.MaxErrors of the client's errors fell within Options.ErrorWindow.
// rate_limited does not count: a client that reconnects with many
// subscriptions may exceed the burst without doing anything wrong.
func (s *session) reply(e *protocol.Error) {
	s.send(e)
	s.srv.metrics.errors.WithLabelValues(string(e.Code)).Inc()
	switch e.Code {
	case protocol.CodeUnavailable, protocol.CodeInternal:
		return // not the client's fault
	case protocol.CodeRateLimited:
		return // already paid for by the pause that follows it
	}
	if s.tooManyErrors(time.Now()) {
		s.close(protocol.CloseTooManyErrors, "too many bad requests")
	}
}

// keyScope is the space of the connection's idempotency keys: its user's,
// or the one all anonymous connections share.
func (s *session) keyScope() keyScope {
	if s.identity.Anonymous() {
		return anonymousKeys
	}
	return keyScope("u" + strconv.Itoa(len(s.identity.User)) + ":" + s.identity.User + ":")
}

// keyScope prefixes idempotency keys so that publishers cannot take each
// other's keys: a key used by one user (or by anonymous connections, or the
// HTTP API) never dedupes another's publish. Scopes are prefix-free.
type keyScope string

const (
	anonymousKeys keyScope = "a:"
	apiKeys       keyScope = "api:"
)

// of returns key in the scope; no key stays no key.
func (k keyScope) of(key string) string {
	if key == "" {
		return ""
	}
	return string(k) + key
}
