package herald

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/protocol"
)

// The defaults of HookOptions.
const (
	DefaultHookTimeout     = 5 * time.Second
	DefaultHookConcurrency = 64
)

// HookOptions make the server ask an application's backend, over HTTP,
// who a connection is and what it may do: each hook is the URL of a POST
// whose JSON request and answer docs/OPERATIONS.md (Hooks) describes. An
// empty URL leaves the decision to the rest of Options. The zero value
// calls no hook.
type HookOptions struct {
	// Connect is called at every upgrade, instead of Authenticate and the
	// upgrade's token: its answer names the user, the expiry, the channels
	// the connection is subscribed to on the server's side, or refuses it.
	Connect string
	// Subscribe is called for each subscribe that a token's channels claim
	// does not already allow, after the namespace rules allowed it.
	Subscribe string
	// Publish is called for each publish of a WebSocket client (not for the
	// HTTP API or Server.Publish); its answer may replace the data.
	Publish string
	// RPC is called for each rpc request; without it rpc is answered
	// bad_request.
	RPC string
	// Refresh is called when a connection made through Connect reaches its
	// expiry; without it, or when it fails, the connection is closed with
	// 4001.
	Refresh string
	// Namespaces holds the Subscribe, Publish and RPC hooks of a namespace,
	// used instead of the ones above for its channels (for rpc: for methods
	// whose part before the first ':' names it).
	Namespaces map[string]NamespaceHooks

	// Secret, when set, signs every request: X-Herald-Signature carries
	// "sha256=" and the hex HMAC-SHA256 of the raw body with it.
	Secret string
	// Timeout bounds each request, its wait for a free slot included.
	// Default 5 s.
	Timeout time.Duration
	// Concurrency is the number of requests in flight per hook URL; more
	// wait, within Timeout. Default 64.
	Concurrency int
	// Headers and Cookies name the upgrade's request headers and cookies
	// passed to the connect hook. None by default: a backend sees only
	// what is listed.
	Headers []string
	Cookies []string

	// Client makes the requests. nil means a client of the server's own.
	Client *http.Client
}

// NamespaceHooks are the hooks of one namespace; an empty URL means the
// server-wide hook of HookOptions.
type NamespaceHooks struct {
	Subscribe string
	Publish   string
	RPC       string
}

// Hook names, as the metric labels and the log carry them.
const (
	hookConnect   = "connect"
	hookSubscribe = "subscribe"
	hookPublish   = "publish"
	hookRPC       = "rpc"
	hookRefresh   = "refresh"
)

// Why a hook request failed, as herald_hook_errors_total's reason label.
const (
	hookUnreachable = "unreachable"
	hookTimeout     = "timeout"
	hookStatus      = "status"
	hookBadAnswer   = "bad_answer"
)

// maxHookAnswer bounds the body of a hook's answer.
const maxHookAnswer = 1 << 20

// hooks are the server's HTTP hooks. Its endpoints are made once, by New,
// and only read afterwards.
type hooks struct {
	opts      HookOptions
	client    *http.Client
	log       *slog.Logger
	errors    *prometheus.CounterVec
	endpoints map[string]*hookEndpoint // by name: the server-wide hooks
	spaces    map[string]map[string]*hookEndpoint
}

// hookEndpoint is one hook URL with its bound on requests in flight.
type hookEndpoint struct {
	name    string
	url     string
	slots   chan struct{}
	lastLog atomic.Int64 // UnixNano of the last failure logged
}

func newHooks(o *HookOptions, reg prometheus.Registerer, log *slog.Logger) *hooks {
	h := &hooks{log: log, endpoints: map[string]*hookEndpoint{}, spaces: map[string]map[string]*hookEndpoint{}}
	if o != nil {
		h.opts = *o
	}
	setDefault(&h.opts.Timeout, DefaultHookTimeout)
	setDefault(&h.opts.Concurrency, DefaultHookConcurrency)
	h.client = h.opts.Client
	if h.client == nil {
		// Keep a connection per slot: the default two idle connections per
		// host would make most requests of a busy hook open a new one.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = h.opts.Concurrency
		h.client = &http.Client{Transport: t}
	}
	h.errors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_hook_errors_total",
		Help: "Hook requests that failed, by hook and reason (unreachable, timeout, status: not 200, bad_answer: not the documented JSON).",
	}, []string{"hook", "reason"})
	reg.MustRegister(h.errors)
	byURL := map[string]*hookEndpoint{}
	endpoint := func(name, url string) *hookEndpoint {
		if url == "" {
			return nil
		}
		if ep, ok := byURL[name+" "+url]; ok {
			return ep
		}
		ep := &hookEndpoint{name: name, url: url, slots: make(chan struct{}, h.opts.Concurrency)}
		byURL[name+" "+url] = ep
		return ep
	}
	for name, url := range map[string]string{hookConnect: h.opts.Connect, hookSubscribe: h.opts.Subscribe,
		hookPublish: h.opts.Publish, hookRPC: h.opts.RPC, hookRefresh: h.opts.Refresh} {
		if ep := endpoint(name, url); ep != nil {
			h.endpoints[name] = ep
		}
	}
	for ns, nh := range h.opts.Namespaces {
		m := map[string]*hookEndpoint{}
		for name, url := range map[string]string{hookSubscribe: nh.Subscribe, hookPublish: nh.Publish, hookRPC: nh.RPC} {
			if ep := endpoint(name, url); ep != nil {
				m[name] = ep
			}
		}
		h.spaces[ns] = m
	}
	return h
}

// endpoint returns the hook name of namespace ns, nil when none is set.
func (h *hooks) endpoint(name, ns string) *hookEndpoint {
	if ep := h.spaces[ns][name]; ep != nil {
		return ep
	}
	return h.endpoints[name]
}

// hookAnswer is a hook's answer; each hook reads the fields it documents.
type hookAnswer struct {
	User       *string         `json:"user"`
	ExpiresAt  int64           `json:"expires_at"`
	Channels   []string        `json:"channels"`
	Info       json.RawMessage `json:"info"`
	Data       json.RawMessage `json:"data"`
	Error      *protocol.Error `json:"error"`
	Disconnect *hookDisconnect `json:"disconnect"`
}

// hookDisconnect is an answer that closes the connection.
type hookDisconnect struct {
	Code   protocol.CloseCode `json:"code"`
	Reason string             `json:"reason"`
}

// errHookFailed is a hook request that got no usable answer; the request
// it was for is answered unavailable.
var errHookFailed = errors.New("herald: hook failed")

// call posts body to ep and decodes the answer. A request that fails is
// counted, logged at most once a second per hook, and returned as
// errHookFailed.
func (h *hooks) call(ctx context.Context, ep *hookEndpoint, body any) (hookAnswer, error) {
	var a hookAnswer
	raw, err := json.Marshal(body)
	if err != nil { // cannot happen: the bodies are plain structs
		return a, h.failed(ep, hookBadAnswer, err)
	}
	ctx, cancel := context.WithTimeout(ctx, h.opts.Timeout)
	defer cancel()
	select {
	case ep.slots <- struct{}{}:
	case <-ctx.Done():
		return a, h.failed(ep, hookTimeout, errors.New("no free slot within the timeout (see the hook concurrency)"))
	}
	defer func() { <-ep.slots }()
	resp, err := h.post(ctx, ep.url, raw)
	if err != nil {
		reason := hookUnreachable
		if ctx.Err() != nil {
			reason = hookTimeout
		}
		return a, h.failed(ep, reason, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxHookAnswer))
		return a, h.failed(ep, hookStatus, fmt.Errorf("status %s", resp.Status))
	}
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxHookAnswer+1))
	switch {
	case err != nil && ctx.Err() != nil:
		return a, h.failed(ep, hookTimeout, err)
	case err != nil:
		return a, h.failed(ep, hookUnreachable, err)
	}
	if err := decodeHookAnswer(answer, &a); err != nil {
		return a, h.failed(ep, hookBadAnswer, err)
	}
	return a, nil
}

func (h *hooks) post(ctx context.Context, url string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if h.opts.Secret != "" {
		req.Header.Set("X-Herald-Signature", Sign([]byte(h.opts.Secret), body))
	}
	return h.client.Do(req)
}

// Sign returns the X-Herald-Signature of a hook request's body: "sha256="
// and the hex HMAC-SHA256 of body with secret. A backend computes it over
// the raw body it received and compares in constant time.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// decodeHookAnswer reads an answer: a JSON object whose error carries a
// code of the Errors table and whose disconnect a code within 4000-4999.
func decodeHookAnswer(body []byte, a *hookAnswer) error {
	if len(body) > maxHookAnswer {
		return fmt.Errorf("answer larger than %d bytes", maxHookAnswer)
	}
	if t := bytes.TrimSpace(body); len(t) == 0 || t[0] != '{' {
		return errors.New("answer is not a JSON object")
	}
	if err := json.Unmarshal(body, a); err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	if e := a.Error; e != nil {
		if e.Code != protocol.CodeInternal && e.Code.HTTPStatus() == http.StatusInternalServerError {
			return fmt.Errorf("answer: unknown error code %q", e.Code)
		}
		e.RetryAfterMS = 0
	}
	if d := a.Disconnect; d != nil && (d.Code < 4000 || d.Code > 4999) {
		return fmt.Errorf("answer: disconnect code %d is not within 4000-4999", d.Code)
	}
	for _, ch := range a.Channels {
		if err := protocol.ValidateChannel(ch); err != nil {
			return fmt.Errorf("answer: channels: %w", err)
		}
	}
	return nil
}

// failed counts a failed request, logs it unless another failure of the
// same hook was logged within the last second, and returns errHookFailed.
func (h *hooks) failed(ep *hookEndpoint, reason string, err error) error {
	h.errors.WithLabelValues(ep.name, reason).Inc()
	now := time.Now().UnixNano()
	last := ep.lastLog.Load()
	if now-last >= int64(time.Second) && ep.lastLog.CompareAndSwap(last, now) {
		h.log.Warn("hook request failed; clients get unavailable", "hook", ep.name, "url", ep.url, "reason", reason, "err", err)
	}
	return errHookFailed
}

// unavailableHook is what a client is told when a hook failed.
func unavailableHook(name string) *protocol.Error {
	return &protocol.Error{Code: protocol.CodeUnavailable, Message: name + " hook unavailable; retry later"}
}

// ask calls the hook ep for one of the session's requests. It returns the
// answer and true, or false once it answered the request (an error frame:
// the backend's, or unavailable) or closed the connection (disconnect).
func (s *session) ask(ep *hookEndpoint, id uint64, body any) (hookAnswer, bool) {
	a, err := s.srv.hooks.call(s.srv.ctx, ep, body)
	switch {
	case err != nil:
		e := unavailableHook(ep.name)
		e.ID = id
		s.reply(e)
		return a, false
	case a.Disconnect != nil:
		s.close(a.Disconnect.Code, a.Disconnect.Reason)
		return a, false
	case a.Error != nil:
		a.Error.ID = id
		s.reply(a.Error)
		return a, false
	}
	return a, true
}

// The request bodies, their fields in the documented order.
type (
	connectRequest struct {
		Client  string            `json:"client"`
		Remote  string            `json:"remote"`
		Headers map[string]string `json:"headers"`
		Cookies map[string]string `json:"cookies"`
	}
	channelRequest struct {
		Client  string          `json:"client"`
		User    string          `json:"user"`
		Info    json.RawMessage `json:"info,omitempty"`
		Channel string          `json:"channel"`
		Data    json.RawMessage `json:"data,omitempty"`
	}
	rpcRequest struct {
		Client string          `json:"client"`
		User   string          `json:"user"`
		Info   json.RawMessage `json:"info,omitempty"`
		Method string          `json:"method"`
		Data   json.RawMessage `json:"data"`
	}
	refreshRequest struct {
		Client string          `json:"client"`
		User   string          `json:"user"`
		Info   json.RawMessage `json:"info,omitempty"`
	}
)

// hookedConn is what the connect hook answered for a connection: its
// server-side channels, and the info given back to the backend with every
// later hook request of the connection.
type hookedConn struct {
	channels []string
	info     json.RawMessage
}

// hookInfo returns the connect hook's info for the connection, nil when
// there is none.
func (s *session) hookInfo() json.RawMessage {
	if s.hook == nil {
		return nil
	}
	return s.hook.info
}

// subscribeAllowed asks the subscribe hook about a subscribe the rules
// allowed, unless a token's channels claim or the connect hook already
// did. It answers the request itself when it returns false.
func (s *session) subscribeAllowed(req *protocol.Subscribe) bool {
	ep := s.srv.hooks.endpoint(hookSubscribe, protocol.Namespace(req.Channel))
	if ep == nil || s.identity.Channels != nil || s.serverSide(req.Channel) {
		return true
	}
	_, ok := s.ask(ep, req.ID, channelRequest{Client: s.id, User: s.identity.User, Info: s.hookInfo(), Channel: req.Channel})
	return ok
}

// publishData asks the publish hook about a publish the rules allowed and
// returns the data to publish: the client's, or the backend's replacement.
// It answers the request itself when it returns false.
func (s *session) publishData(req *protocol.Publish) (json.RawMessage, bool) {
	ep := s.srv.hooks.endpoint(hookPublish, protocol.Namespace(req.Channel))
	if ep == nil {
		return req.Data, true
	}
	a, ok := s.ask(ep, req.ID, channelRequest{Client: s.id, User: s.identity.User, Info: s.hookInfo(), Channel: req.Channel, Data: nullIfEmpty(req.Data)})
	switch {
	case !ok:
		return nil, false
	case a.Data == nil:
		return req.Data, true
	case len(a.Data) > s.srv.opts.MaxMessageBytes:
		s.srv.hooks.failed(ep, hookBadAnswer, fmt.Errorf("replacement data larger than %d bytes", s.srv.opts.MaxMessageBytes))
		e := unavailableHook(ep.name)
		e.ID = req.ID
		s.reply(e)
		return nil, false
	}
	return a.Data, true
}

func nullIfEmpty(data json.RawMessage) json.RawMessage {
	if len(data) == 0 {
		return json.RawMessage("null")
	}
	return data
}

// serverSide reports whether the connect hook subscribed the connection to
// ch, which then needs no subscribe hook.
func (s *session) serverSide(ch string) bool {
	if s.hook == nil {
		return false
	}
	for _, c := range s.hook.channels {
		if c == ch {
			return true
		}
	}
	return false
}

// subscribeServerSide subscribes the connection to the channels the connect
// hook named, each confirmed by a subscribed frame without id.
func (s *session) subscribeServerSide() {
	if s.hook == nil {
		return
	}
	for _, ch := range s.hook.channels {
		if s.isClosing() {
			return
		}
		ctx, cancel := context.WithTimeout(s.srv.ctx, s.srv.opts.WriteTimeout)
		s.join(ctx, &protocol.Subscribe{Channel: ch}, true)
		cancel()
	}
}

// expire ends a connection whose credentials expired or whose hello is
// late. A connection made through the connect hook asks the refresh hook
// for a new expiry first, without holding up the heartbeat.
func (s *session) expire() {
	ep := s.srv.hooks.endpoints[hookRefresh]
	if ep == nil || !s.hooked.Load() {
		s.close(protocol.CloseUnauthorized, s.expiryReason())
		return
	}
	go s.refreshByHook(ep)
}

// refreshByHook asks the refresh hook for the connection's new expiry, and
// closes it with 4001 when the hook refuses or fails (with the hook's code
// when it answers disconnect).
func (s *session) refreshByHook(ep *hookEndpoint) {
	a, err := s.srv.hooks.call(s.srv.ctx, ep, refreshRequest{Client: s.id, User: s.user(), Info: s.hookInfo()})
	switch {
	case err != nil:
		s.close(protocol.CloseUnauthorized, "credentials expired; refresh hook unavailable")
	case a.Disconnect != nil:
		s.close(a.Disconnect.Code, a.Disconnect.Reason)
	case a.Error != nil:
		s.close(protocol.CloseUnauthorized, "credentials expired: "+a.Error.Message)
	case a.ExpiresAt != 0 && a.ExpiresAt <= time.Now().Unix():
		s.close(protocol.CloseUnauthorized, "credentials expired")
	default:
		s.srv.heartbeat.setExpiry(s, unixTime(a.ExpiresAt), false)
	}
}

func unixTime(sec int64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0)
}

// acceptByHook accepts an upgrade the connect hook decides on: its answer
// names the user (anonymous when empty), the expiry and the server-side
// channels; an error refuses the upgrade with the code's HTTP status (403
// for forbidden, 401 for unauthorized); a failed hook answers 503; a
// disconnect upgrades and closes at once with its code.
func (s *Server) acceptByHook(w http.ResponseWriter, r *http.Request, ep *hookEndpoint) (*session, int, string) {
	sid := newSessionID()
	a, err := s.hooks.call(r.Context(), ep, s.hooks.connectRequest(sid, r))
	switch {
	case err != nil:
		s.metrics.upgradesRefused.WithLabelValues("hook").Inc()
		w.Header().Set("Retry-After", "1")
		return nil, http.StatusServiceUnavailable, "herald: connect hook unavailable; retry later"
	case a.Error != nil:
		s.metrics.upgradesRefused.WithLabelValues("hook").Inc()
		return nil, a.Error.Code.HTTPStatus(), "herald: " + a.Error.Message
	}
	id := identityOf(a)
	sess, status, msg := s.upgrade(w, r, sid, id, true)
	if sess == nil {
		return nil, status, msg
	}
	sess.hooked.Store(true)
	sess.hook = &hookedConn{channels: a.Channels, info: a.Info}
	if string(a.Info) == "null" {
		sess.hook.info = nil
	}
	if a.Disconnect != nil {
		sess.close(a.Disconnect.Code, a.Disconnect.Reason)
	}
	return sess, 0, ""
}

func identityOf(a hookAnswer) (id auth.Identity) {
	if a.User != nil {
		id.User = *a.User
	}
	id.ExpiresAt = unixTime(a.ExpiresAt)
	return id
}

// connectRequest is the connect hook's body: the allow-listed headers and
// cookies of the upgrade, and nothing else of it.
func (h *hooks) connectRequest(sid string, r *http.Request) connectRequest {
	req := connectRequest{Client: sid, Remote: r.RemoteAddr, Headers: map[string]string{}, Cookies: map[string]string{}}
	for _, name := range h.opts.Headers {
		if v := r.Header.Values(name); len(v) > 0 {
			req.Headers[name] = strings.Join(v, ", ")
		}
	}
	for _, name := range h.opts.Cookies {
		if c, err := r.Cookie(name); err == nil {
			req.Cookies[name] = c.Value
		}
	}
	return req
}
