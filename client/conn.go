package client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/heraldhq/herald/protocol"
)

// maxIncomingBytes bounds one message from the server. The server's own
// limit (welcome's max_message_bytes) applies to what clients send; what it
// sends back is that plus a small envelope.
const maxIncomingBytes = 16 << 20

// closeWait is how long Close waits for the server to answer its close frame
// before it closes the socket.
const closeWait = time.Second

// conn is one WebSocket connection. Its reader goroutine reads frames and
// hands them to the client; the client's run goroutine, in serve, writes the
// frames queued with send and watches liveness. send never blocks, so the
// client may call it under its lock.
type conn struct {
	c            *Client
	nc           net.Conn
	rd           *wsutil.Reader
	deflate      bool     // permessage-deflate was negotiated
	inflater     inflater // owned by the reader
	ctl          wsutil.FrameHandlerFunc
	writeTimeout time.Duration
	interval     time.Duration // the server's ping_interval_ms
	timeout      time.Duration // the server's pong_timeout_ms

	outMu sync.Mutex
	out   net.Buffers
	wake  chan struct{}

	lastRecv atomic.Int64 // wall clock, Unix nanoseconds, of the newest frame
	closing  atomic.Bool  // we sent close 1000
	pingAt   int64        // wall clock of our unanswered ping; run goroutine only

	failOnce sync.Once
	cause    error // why the connection ended; read after dead is closed
	dead     chan struct{}
	readDone chan struct{}
}

// tokenlessGrace is how much longer than Options.DialTimeout a connection
// made without a token waits for its welcome. A server that needs a token
// waits for one in hello for its hello_timeout (herald's default is 10 s,
// the same as DialTimeout's) and then closes with 4001: the client must
// outlast that wait to hear why it was refused.
const tokenlessGrace = 5 * time.Second

// dial opens a connection and waits for the server's welcome.
func (c *Client) dial(ctx context.Context, token string) (*conn, *protocol.Welcome, error) {
	cn, w, err := c.dialWelcome(ctx, token)
	if err != nil && token == "" && c.opts.TokenFunc == nil && refusedToken(err) {
		err = fmt.Errorf("%w: %w", ErrTokenRequired, err)
	}
	return cn, w, err
}

// refusedToken reports whether err is the server's demand for a token: close
// 4001 or HTTP 401.
func refusedToken(err error) bool {
	var ce *CloseError
	var he *HandshakeError
	return errors.As(err, &ce) && ce.Code == protocol.CloseUnauthorized ||
		errors.As(err, &he) && he.Status == http.StatusUnauthorized
}

func (c *Client) dialWelcome(ctx context.Context, token string) (*conn, *protocol.Welcome, error) {
	timeout := c.opts.DialTimeout
	if token == "" {
		timeout += tokenlessGrace
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var refusal *HandshakeError
	d := ws.Dialer{
		Protocols: []string{protocol.Subprotocol},
		Header:    ws.HandshakeHeaderHTTP(upgradeHeader(token, c.opts.Header)),
		NetDial:   c.opts.NetDial,
		TLSConfig: c.opts.TLSConfig,
		OnStatusError: func(status int, _ []byte, resp io.Reader) {
			refusal = readRefusal(c.url, status, resp)
		},
	}
	if c.opts.Compression {
		d.Extensions = []httphead.Option{deflateOffer}
	}
	nc, br, hs, err := d.Dial(ctx, c.url)
	if err != nil {
		var status ws.StatusError
		if errors.As(err, &status) {
			if refusal == nil {
				refusal = &HandshakeError{URL: c.url, Status: int(status)}
			}
			return nil, nil, refusal
		}
		return nil, nil, fmt.Errorf("herald: connect: %w", err)
	}
	cn := newConn(c, nc, br)
	if deflateAccepted(hs.Extensions) {
		cn.deflate = true
		cn.inflater.enable(cn.rd)
	}
	w, err := cn.readWelcome(ctx)
	if err != nil {
		nc.Close()
		if token == "" && ctx.Err() != nil {
			err = fmt.Errorf("%w (no token was sent; a server that needs one waits for it instead of welcoming)", err)
		}
		return nil, nil, err
	}
	return cn, w, nil
}

func upgradeHeader(token string, extra http.Header) http.Header {
	h := extra.Clone()
	if h == nil {
		h = http.Header{}
	}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return h
}

// maxRefusalBody bounds the part of a refused upgrade's body the client
// reads, to quote it in the HandshakeError.
const maxRefusalBody = 200

// readRefusal reads the response to an upgrade that the server answered
// with status instead of 101: its Retry-After (in seconds), Content-Type,
// Location, and the first line of a text/plain body.
func readRefusal(url string, status int, resp io.Reader) *HandshakeError {
	e := &HandshakeError{URL: url, Status: status}
	r, err := http.ReadResponse(bufio.NewReader(resp), nil)
	if err != nil {
		return e
	}
	defer r.Body.Close()
	e.ContentType = r.Header.Get("Content-Type")
	e.Location = r.Header.Get("Location")
	if secs, err := strconv.Atoi(r.Header.Get("Retry-After")); err == nil && secs >= 0 {
		e.RetryAfter = time.Duration(secs) * time.Second
	}
	if mt, _, _ := mime.ParseMediaType(e.ContentType); mt == "text/plain" && r.ContentLength > 0 {
		body, _ := io.ReadAll(io.LimitReader(r.Body, min(r.ContentLength, maxRefusalBody)))
		line, _, _ := strings.Cut(string(body), "\n")
		e.Body = strings.Map(printable, strings.ToValidUTF8(strings.TrimSpace(line), ""))
	}
	return e
}

// printable drops control characters, so that a body quoted in an error
// cannot move a terminal's cursor.
func printable(r rune) rune {
	if unicode.IsControl(r) {
		return -1
	}
	return r
}

func newConn(c *Client, nc net.Conn, br *bufio.Reader) *conn {
	var src io.Reader = nc
	if br != nil {
		src = br // holds bytes the server sent right after the upgrade
	}
	cn := &conn{
		c:            c,
		nc:           nc,
		writeTimeout: c.opts.WriteTimeout,
		wake:         make(chan struct{}, 1),
		dead:         make(chan struct{}),
		readDone:     make(chan struct{}),
	}
	cn.rd = &wsutil.Reader{
		Source:         bufio.NewReader(src),
		State:          ws.StateClientSide,
		CheckUTF8:      true,
		MaxMessageSize: maxIncomingBytes,
	}
	cn.ctl = wsutil.ControlFrameHandler(outboxWriter{cn}, ws.StateClientSide)
	cn.rd.OnIntermediate = cn.ctl
	cn.touch()
	return cn
}

// readWelcome reads the server's first frame, which must be welcome.
func (cn *conn) readWelcome(ctx context.Context) (*protocol.Welcome, error) {
	stop := context.AfterFunc(ctx, func() { cn.nc.SetReadDeadline(time.Unix(1, 0)) })
	f, err := cn.next()
	if !stop() { // ctx ended, and its deadline now poisons the socket
		return nil, fmt.Errorf("herald: waiting for welcome: %w", ctx.Err())
	}
	if err != nil {
		return nil, err
	}
	w, ok := f.(*protocol.Welcome)
	if !ok {
		return nil, fmt.Errorf("herald: server sent %q before welcome", f.Type())
	}
	cn.interval = time.Duration(w.PingIntervalMS) * time.Millisecond
	cn.timeout = time.Duration(w.PongTimeoutMS) * time.Millisecond
	return w, nil
}

// next returns the next frame from the server, answering control frames on
// the way. Frames it cannot decode (a newer server's types) are skipped.
func (cn *conn) next() (protocol.Frame, error) {
	for {
		hdr, err := cn.rd.NextFrame()
		if err != nil {
			return nil, lostError(err)
		}
		cn.touch()
		switch {
		case hdr.OpCode == ws.OpClose:
			return nil, cn.closed()
		case hdr.OpCode.IsControl():
			if err := cn.ctl(hdr, cn.rd); err != nil {
				return nil, lostError(err)
			}
		case hdr.OpCode == ws.OpText:
			payload, err := readMessage(cn.inflater.message(cn.rd), maxIncomingBytes)
			if err == nil && cn.deflate && !utf8.Valid(payload) { // checked by rd otherwise
				err = wsutil.ErrInvalidUTF8
			}
			if err != nil {
				return nil, lostError(err)
			}
			if f, err := protocol.Decode(payload); err == nil {
				return f, nil
			}
			cn.c.log.Debug("herald: skipping undecodable frame", "frame", string(payload))
		default:
			if err := cn.rd.Discard(); err != nil {
				return nil, lostError(err)
			}
		}
	}
}

// closed handles the server's close frame: it records the code as the
// connection's end, before queuing the answer, whose write may fail once the
// server hangs up.
func (cn *conn) closed() error {
	payload, err := io.ReadAll(cn.rd)
	if err != nil {
		return lostError(err)
	}
	code, reason := ws.ParseCloseFrameData(payload)
	ce := &CloseError{Code: protocol.CloseCode(code), Reason: reason}
	cn.fail(ce)
	if !cn.closing.Load() {
		var body []byte
		if code != 0 && code != ws.StatusNoStatusRcvd {
			body = ws.NewCloseFrameBody(code, "")
		}
		cn.enqueue(clientFrame(ws.OpClose, body))
	}
	return ce
}

func lostError(err error) error {
	return fmt.Errorf("herald: connection lost: %w", err)
}

// touch records that something arrived from the server, by the wall clock
// (UnixNano ignores the monotonic reading), so that time spent asleep counts.
func (cn *conn) touch() { cn.lastRecv.Store(time.Now().UnixNano()) }

// readLoop hands every frame to the client until the connection fails.
func (cn *conn) readLoop() {
	defer close(cn.readDone)
	for {
		f, err := cn.next()
		if err != nil {
			cn.fail(err)
			return
		}
		cn.c.handle(cn, f)
	}
}

// fail records why the connection ended and tells serve to close it. The
// first cause wins.
func (cn *conn) fail(err error) {
	cn.failOnce.Do(func() {
		cn.cause = err
		close(cn.dead)
	})
}

// failed reports whether the connection has ended.
func (cn *conn) failed() bool {
	select {
	case <-cn.dead:
		return true
	default:
		return false
	}
}

// send queues a frame for the writer.
func (cn *conn) send(f protocol.Frame) {
	payload, err := protocol.Encode(f)
	if err != nil {
		cn.fail(err) // our own frames always encode; this is a bug
		return
	}
	cn.enqueue(clientFrame(ws.OpText, payload))
}

func (cn *conn) enqueue(frame []byte) {
	cn.outMu.Lock()
	cn.out = append(cn.out, frame)
	cn.outMu.Unlock()
	select {
	case cn.wake <- struct{}{}:
	default:
	}
}

// clientFrame returns a complete, masked client frame holding payload.
func clientFrame(op ws.OpCode, payload []byte) []byte {
	h := ws.Header{Fin: true, OpCode: op, Masked: true, Mask: ws.NewMask(), Length: int64(len(payload))}
	var buf bytes.Buffer
	buf.Grow(ws.HeaderSize(h) + len(payload))
	ws.WriteHeader(&buf, h)
	n := buf.Len()
	buf.Write(payload)
	b := buf.Bytes()
	ws.Cipher(b[n:], h.Mask, 0)
	return b
}

// outboxWriter lets wsutil's control handler queue its pong and close
// answers behind the frames already waiting.
type outboxWriter struct{ cn *conn }

func (w outboxWriter) Write(p []byte) (int, error) {
	w.cn.enqueue(bytes.Clone(p))
	return len(p), nil
}

// flush writes every queued frame in one writev.
func (cn *conn) flush() error {
	cn.outMu.Lock()
	bufs := cn.out
	cn.out = nil
	cn.outMu.Unlock()
	if len(bufs) == 0 {
		return nil
	}
	cn.nc.SetWriteDeadline(time.Now().Add(cn.writeTimeout))
	_, err := bufs.WriteTo(cn.nc)
	return err
}

// serve writes queued frames and checks liveness until the connection fails
// or ctx ends (then it closes with 1000). It returns why the connection
// ended, nil after a close by ctx.
func (cn *conn) serve(ctx context.Context) error {
	go cn.readLoop()
	tick := time.NewTicker(cn.tickPeriod())
	defer tick.Stop()
	for {
		select {
		case <-cn.wake:
			if err := cn.flush(); err != nil {
				cn.fail(lostError(err))
			}
		case now := <-tick.C:
			cn.checkLiveness(now)
		case <-cn.dead:
			cn.shutdown()
			return cn.cause
		case <-ctx.Done():
			cn.closeNormally()
			return nil
		}
	}
}

// tickPeriod is how often serve checks liveness: often enough that a dead
// connection is noticed close to interval+timeout, and at once after the
// machine wakes from sleep.
func (cn *conn) tickPeriod() time.Duration {
	return min(max(min(cn.interval, cn.timeout)/8, 5*time.Millisecond), 500*time.Millisecond)
}

// checkLiveness follows PROTOCOL.md's heartbeat rules by the wall clock:
// after interval of silence it sends an application ping; when nothing at all
// arrived within timeout after that, or the silence already exceeds
// interval+timeout (the machine slept), the connection is dead.
func (cn *conn) checkLiveness(now time.Time) {
	if cn.interval <= 0 || cn.timeout <= 0 {
		return
	}
	wall := now.UnixNano()
	last := cn.lastRecv.Load()
	if cn.pingAt != 0 && last >= cn.pingAt {
		cn.pingAt = 0 // answered, or something else proved life
	}
	silent := time.Duration(wall - last)
	switch {
	case silent >= cn.interval+cn.timeout:
		cn.fail(ErrNoPong)
	case cn.pingAt != 0 && time.Duration(wall-cn.pingAt) >= cn.timeout:
		cn.fail(ErrNoPong)
	case cn.pingAt == 0 && silent >= cn.interval:
		cn.pingAt = wall
		cn.send(&protocol.Ping{ID: cn.c.newID()})
	}
}

// shutdown ends a failed connection. After a close frame from the server it
// first writes what is queued (the close answer); otherwise the socket is
// closed at once.
func (cn *conn) shutdown() {
	var ce *CloseError
	if errors.As(cn.cause, &ce) {
		cn.flush()
	}
	cn.nc.Close()
	<-cn.readDone
}

// closeNormally sends close 1000 and waits a little for the server's answer
// before it closes the socket.
func (cn *conn) closeNormally() {
	cn.closing.Store(true)
	cn.enqueue(clientFrame(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
	if cn.flush() == nil {
		select {
		case <-cn.readDone:
		case <-time.After(closeWait):
		}
	}
	cn.fail(ErrClosed)
	cn.nc.Close()
	<-cn.readDone
}
