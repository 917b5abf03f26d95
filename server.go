package herald

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/protocol"
)

// ErrShuttingDown is what Ready reports once Shutdown or Close was called.
var ErrShuttingDown = errors.New("herald: shutting down")

// Server serves herald.v1 WebSocket connections. Its methods are safe for
// concurrent use. Create it with New.
type Server struct {
	opts       Options
	broker     broker.Broker
	ownsBroker bool
	log        *slog.Logger
	hub        *hub
	heartbeat  *heartbeat
	poller     *poller // nil: every connection reads with a goroutine
	pollerOnce sync.Once
	upgrader   ws.HTTPUpgrader
	compressor compressor // compress.go
	metrics    *metrics
	hooks      *hooks
	gatherer   prometheus.Gatherer

	presenceOnce   sync.Once
	presenceKeeper broker.Presence // presence.go

	originWarnings warnLimiter // refused origins recently logged

	ctx    context.Context // ends on Close
	cancel context.CancelFunc
	bg     sync.WaitGroup // broker and heartbeat loops

	mu       sync.Mutex
	sessions map[*session]struct{}
	perAddr  map[string]int
	conns    sync.WaitGroup // one per session
	count    atomic.Int64
	stopping atomic.Bool
	closed   bool
}

// New returns a running Server. A nil opts means all defaults.
func New(opts *Options) *Server {
	o := opts.withDefaults()
	s := &Server{
		opts:     o,
		broker:   o.Broker,
		log:      o.Logger,
		sessions: make(map[*session]struct{}),
		perAddr:  make(map[string]int),
	}
	if s.broker == nil {
		history := make(map[string]broker.HistoryOptions)
		for ns, o := range o.Namespaces {
			history[ns] = o.History
		}
		s.broker = broker.NewMemory(&broker.MemoryOptions{Namespaces: history, Logger: o.Logger})
		s.ownsBroker = true
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	reg := o.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s.metrics, s.gatherer = newMetrics(reg, s.broker), reg
	s.hooks = newHooks(o.Hooks, reg, s.log)
	s.hub = newHub(s.metrics)
	s.compressor = compressor{minBytes: o.CompressionMinBytes, metrics: s.metrics}
	s.heartbeat = newHeartbeat(o.PingInterval, o.PongTimeout, s.metrics)
	s.upgrader = ws.HTTPUpgrader{
		Timeout:  o.WriteTimeout,
		Protocol: func(p string) bool { return p == protocol.Subprotocol },
	}
	s.bg.Add(2)
	go func() {
		defer s.bg.Done()
		s.heartbeat.run(s.ctx)
	}()
	brokerStarted := make(chan struct{})
	go func() {
		defer s.bg.Done()
		s.runBroker(brokerStarted)
	}()
	presenceStarted := s.runPresence()
	<-brokerStarted
	<-presenceStarted
	s.waitLoops()
	return s
}

// waitLoops waits until the broker loop and the presence loop, whose
// goroutines are under way, have their deliver funcs in place, so that no
// publication, join or leave made through the server reaches nobody for
// want of them. It yields rather than sleeps, which would move a fake clock
// (synctest), and gives up after as many yields as attaching could ever
// take.
func (s *Server) waitLoops() {
	run, _ := s.broker.(broker.RunReporter)
	watch, _ := s.presence().(broker.WatchReporter)
	for i := 0; i < 100_000; i++ {
		if (run == nil || run.Running()) && (watch == nil || watch.Watching()) {
			return
		}
		runtime.Gosched()
	}
}

// pollerStarted returns the server's poller, starting it with the first
// connection that can be polled; nil when connections read with goroutines.
func (s *Server) pollerStarted() *poller {
	s.pollerOnce.Do(func() {
		if s.opts.ReaderPerConnection {
			return
		}
		p, err := newPoller()
		if err != nil {
			if !errors.Is(err, errors.ErrUnsupported) {
				s.log.Warn("epoll unavailable; every connection reads with a goroutine", "err", err)
			}
			return
		}
		s.poller = p
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			p.run()
		}()
	})
	return s.poller
}

// runBroker delivers the broker's publications to local subscribers until
// the server closes, restarting the broker's loop after a failure. It
// closes started as it first calls the broker.
func (s *Server) runBroker(started chan<- struct{}) {
	close(started)
	for {
		var err error
		if b, ok := s.broker.(broker.BatchRunner); ok {
			err = b.RunBatches(s.ctx, s.hub.deliverBatch)
		} else {
			err = s.broker.Run(s.ctx, s.hub.deliver)
		}
		if s.ctx.Err() != nil || errors.Is(err, broker.ErrClosed) {
			return
		}
		s.log.Warn("broker loop stopped; restarting", "err", err)
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// ServeHTTP upgrades the request to a herald.v1 WebSocket connection. It
// answers with a plain HTTP status, without upgrading, when the request is
// not a WebSocket upgrade (426), its Host or Origin is not allowed (403), the server
// is full or shutting down (503 with Retry-After), or it offers subprotocols
// but not herald.v1 (400).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !isUpgrade(r) {
		s.notUpgrade(w, r)
		return
	}
	if !s.hostAllowed(r) {
		s.metrics.upgradesRefused.WithLabelValues("host").Inc()
		http.Error(w, "herald: host not allowed", http.StatusForbidden)
		return
	}
	if !s.originAllowed(r) {
		s.refusedOrigin(w, r)
		return
	}
	if s.stopping.Load() {
		unavailable(w, "herald: server shutting down", 5)
		return
	}
	addr := remoteIP(r.RemoteAddr)
	if !s.reserve(addr) {
		unavailable(w, "herald: too many connections", 1)
		return
	}
	sess, status, msg := s.accept(w, r)
	if sess == nil {
		s.release(addr)
		if status != 0 {
			http.Error(w, msg, status)
		}
		return
	}
	if sess.fd >= 0 {
		sess.open()
		early := !sess.br.empty() // bytes that came with the handshake
		sess.reading.Store(early)
		err := s.poller.add(sess)
		if err == nil {
			if early {
				go sess.readReady()
			}
			return
		}
		s.log.Warn("epoll registration failed; reading with a goroutine", "session", sess.id, "err", err)
		sess.reading.Store(false)
		go sess.end(sess.readLoop())
		return
	}
	go sess.serve()
}

// reserve counts a new connection from addr, unless MaxConnections, or
// MaxConnectionsPerAddr from addr, are open.
func (s *Server) reserve(addr string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if max := s.opts.MaxConnections; max > 0 && s.count.Load() >= int64(max) {
		return false
	}
	if max := s.opts.MaxConnectionsPerAddr; max > 0 && s.perAddr[addr] >= max {
		return false
	}
	s.count.Add(1)
	s.perAddr[addr]++
	return true
}

func (s *Server) release(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count.Add(-1)
	if s.perAddr[addr]--; s.perAddr[addr] <= 0 {
		delete(s.perAddr, addr)
	}
}

// remoteIP is the key MaxConnectionsPerAddr counts remote (host:port) under:
// the IP address for IPv4, its /64 prefix for IPv6.
func remoteIP(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	if ip = ip.Unmap().WithZone(""); ip.Is4() {
		return ip.String()
	}
	p, _ := ip.Prefix(64) // one IPv6 client usually holds a whole /64
	return p.String()
}

func (s *Server) track(sess *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.sessions[sess] = struct{}{}
	s.conns.Add(1)
	return true
}

func (s *Server) untrack(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
	s.release(remoteIP(sess.remote))
	s.conns.Done()
}

func (s *Server) snapshot() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		list = append(list, sess)
	}
	return list
}

// Connections returns the number of open connections.
func (s *Server) Connections() int { return int(s.count.Load()) }

// Shutdown stops accepting connections, closes every open connection with
// 1001 (spread over Options.DrainWindow so clients do not come back together),
// waits until their queued frames are flushed or ctx ends, and then closes
// the broker if the server created it. When ctx ends first, the remaining
// connections are closed at once and ctx's error is returned. Shutdown is
// idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopping.Store(true)
	list := s.snapshot()
	window := s.opts.DrainWindow
	if dl, ok := ctx.Deadline(); ok {
		window = min(window, time.Until(dl)/2)
	}
	// Connection i is closed at start + i*window/n. Each wait is until that
	// time, not for a step: a timer fires no sooner than a millisecond or so
	// after it is due, and when the step is shorter, or the closes themselves
	// take time, sleeping per connection would stretch the window (5,000
	// connections took 6.8 s instead of 5 s). Connections that are due are
	// closed without waiting.
	start := time.Now()
	timer := time.NewTimer(window)
	timer.Stop()
	for i, sess := range list {
		due := start.Add(window * time.Duration(i) / time.Duration(len(list)))
		if d := time.Until(due); d > 0 && ctx.Err() == nil {
			timer.Reset(d)
			select {
			case <-ctx.Done():
			case <-timer.C:
			}
		}
		sess.close(protocol.CloseGoingAway, "server shutting down")
	}
	done := make(chan struct{})
	go func() {
		s.conns.Wait()
		close(done)
	}()
	select {
	case <-done:
		return s.Close()
	case <-ctx.Done():
		return errors.Join(ctx.Err(), s.Close())
	}
}

// Close closes every connection at once, without a close handshake, and
// stops the server. It is idempotent.
func (s *Server) Close() error {
	s.stopping.Store(true)
	s.mu.Lock()
	already := s.closed
	s.closed = true
	s.mu.Unlock()
	if already {
		return nil
	}
	for _, sess := range s.snapshot() {
		sess.kill()
	}
	s.conns.Wait()
	s.cancel()
	s.pollerOnce.Do(func() {}) // none starts after this
	if s.poller != nil {
		s.poller.close()
	}
	s.bg.Wait()
	if s.poller != nil {
		s.poller.release()
	}
	if s.ownsBroker {
		return s.broker.Close()
	}
	return nil
}

// brokerProblem counts a broker operation that failed and says what the
// client is told: unavailable when the broker cannot be reached or did not
// answer in time, limit_exceeded when it holds as many channels as it may,
// internal otherwise, with the details in the log only.
func (s *Server) brokerProblem(op string, err error, logAttrs ...any) *protocol.Error {
	s.metrics.brokerErrors.WithLabelValues(op).Inc()
	if errors.Is(err, broker.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return &protocol.Error{Code: protocol.CodeUnavailable, Message: "broker unavailable; retry later"}
	}
	if errors.Is(err, broker.ErrTooManyChannels) {
		return &protocol.Error{Code: protocol.CodeLimitExceeded, Message: "too many channels on this server"}
	}
	s.log.Error("broker "+op+" failed", append(logAttrs, "err", err)...)
	return &protocol.Error{Code: protocol.CodeInternal, Message: "internal error"}
}

func unavailable(w http.ResponseWriter, msg string, retryAfter int) {
	w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	http.Error(w, msg, http.StatusServiceUnavailable)
}
