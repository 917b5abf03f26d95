package doctor

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/gobwas/ws"
)

// slowUpgrade is the upgrade time above which the handshake warns.
const slowUpgrade = time.Second

// handshake upgrades once, offering permessage-deflate like a browser, reads
// Herald's welcome when there is one, and probes the same host:port for an
// HTTP page.
func (d *doctor) handshake() Check {
	ch := Check{Name: "handshake", Status: Pass, Measured: map[string]any{}}
	c, err := d.dial(true)
	if err != nil {
		if ic, ok := d.interrupted(ch.Name); ok {
			return ic
		}
		return d.handshakeFailed(ch, err)
	}
	defer c.Close()
	proto := c.protocol
	if proto == "" {
		proto = "none"
	}
	exts := strings.Join(c.exts, ", ")
	if exts == "" {
		exts = "none"
	}
	ch.Measured["status"] = 101
	ch.Measured["upgrade_ms"] = ms(c.dialTime)
	ch.Measured["tcp_ms"] = ms(c.tcpTime)
	ch.Measured["subprotocol"] = c.protocol
	ch.Measured["extensions"] = append([]string{}, c.exts...)
	parts := []string{
		fmt.Sprintf("101 in %s (TCP connect %s)", human(c.dialTime), human(c.tcpTime)),
		"subprotocol " + proto,
		"extensions " + exts,
	}
	if c.dialTime > slowUpgrade {
		ch.Status = Warn
		ch.Hint = fmt.Sprintf("the upgrade took %s: every reconnect pays this, and a reconnect storm multiplies it; look at TLS setup, authentication hooks and proxies in front of the server", human(c.dialTime))
	}

	parts = append(parts, d.readHandshakeWelcome(c, &ch))
	c.write(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "herald doctor"))

	parts = append(parts, d.probeHTTP(&ch))
	ch.Summary = strings.Join(parts, ", ")
	return ch
}

// readHandshakeWelcome waits for a welcome frame, briefly: Herald sends it
// at once when the connection needs no token. When herald.v1 was
// negotiated and no welcome came, a ping request tells a Herald waiting
// for a token from a server that selected herald.v1 without speaking it.
func (d *doctor) readHandshakeWelcome(c *conn, ch *Check) string {
	d.herald = c.protocol == Subprotocol
	wait := min(d.opts.Timeout, 500*time.Millisecond)
	f, err := c.nextData(d.wait(wait))
	r, ok := parseReply(f)
	switch {
	case err == nil && ok && r.Type == "welcome":
		d.welcomed(r, f.at.Sub(c.upgraded), ch)
		return fmt.Sprintf("welcome in %s (%s)", human(f.at.Sub(c.upgraded)), describeWelcome(r))
	case !d.herald:
		return "no welcome (not a Herald endpoint)"
	case err == nil || errors.Is(err, errTimeout):
		return d.askHerald(c, ch, wait)
	}
	ch.Status = worse(ch.Status, Warn)
	ch.Hint = "herald.v1 was negotiated but no welcome came: a Herald server sends it first"
	return fmt.Sprintf("no welcome within %s (got %s)", human(wait), describeEnd(err))
}

// welcomed records what Herald's welcome announced.
func (d *doctor) welcomed(r *reply, after time.Duration, ch *Check) {
	d.herald, d.welcome = true, r
	ch.Measured["welcome_ms"] = ms(after)
	ch.Measured["ping_interval_ms"] = r.PingIntervalMS
	ch.Measured["pong_timeout_ms"] = r.PongTimeoutMS
	ch.Measured["max_message_bytes"] = r.MaxMessageBytes
}

// askHerald sends Herald's ping request on a connection that negotiated
// herald.v1 but got no welcome. Herald answers pong, or error unauthorized
// while it waits for a token; anything else is not Herald.
func (d *doctor) askHerald(c *conn, ch *Check, waited time.Duration) string {
	c.sendJSON(map[string]any{"type": "ping", "id": 1})
	r, closed, err := c.awaitReply(d.wait(d.opts.Timeout), func(*reply) bool { return true })
	got := describeReply(r, closed, err)
	switch {
	case err == nil && closed == nil && r.Type == "welcome":
		d.welcomed(r, time.Since(c.upgraded), ch)
		return fmt.Sprintf("welcome after %s (%s)", human(time.Since(c.upgraded)), describeWelcome(r))
	case err == nil && closed == nil && (r.Type == "pong" && r.ID == 1 || r.Type == "error" && r.Code != ""):
		ch.Status = worse(ch.Status, Warn)
		ch.Hint = "herald.v1 was negotiated but no welcome came; a server that requires a token waits for one: pass it with --token"
		return fmt.Sprintf("no welcome within %s (a ping request got %s)", human(waited), got)
	}
	d.herald = false
	ch.Status = worse(ch.Status, Warn)
	ch.Hint = "the server selected herald.v1 without speaking it: RFC 6455 wants a server to select only a subprotocol it speaks, and clients trust the selection (Node's ws selects the first one offered unless handleProtocols says otherwise); to check a server of another protocol, run with --subprotocol ''"
	return fmt.Sprintf("no welcome, and a ping request got %s: not a Herald endpoint, though it selected herald.v1", got)
}

// describeWelcome lists the settings a welcome announced.
func describeWelcome(r *reply) string {
	var parts []string
	if r.Server != "" {
		parts = append(parts, r.Server)
	}
	if r.PingIntervalMS > 0 {
		parts = append(parts, "ping "+human(msDuration(r.PingIntervalMS)))
	}
	if r.PongTimeoutMS > 0 {
		parts = append(parts, "pong timeout "+human(msDuration(r.PongTimeoutMS)))
	}
	if r.MaxMessageBytes > 0 {
		parts = append(parts, fmt.Sprintf("max message %d B", r.MaxMessageBytes))
	}
	if len(parts) == 0 {
		return "no settings"
	}
	return strings.Join(parts, ", ")
}

// probeHTTP asks the same host:port for a page: GET / and GET on the
// WebSocket path.
func (d *doctor) probeHTTP(ch *Check) string {
	u, err := url.Parse(d.url)
	if err != nil {
		return "HTTP probe: " + err.Error()
	}
	u.Scheme = strings.Replace(u.Scheme, "ws", "http", 1)
	client := &http.Client{
		Timeout:       d.opts.Timeout,
		Transport:     &http.Transport{TLSClientConfig: d.opts.TLSConfig},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	get := func(path, key string) string {
		p := *u
		p.Path, p.RawQuery = path, ""
		req, err := http.NewRequestWithContext(d.ctx, http.MethodGet, p.String(), nil)
		if err != nil {
			return err.Error()
		}
		resp, err := client.Do(req)
		if err != nil {
			return "no answer"
		}
		resp.Body.Close()
		ch.Measured[key] = resp.StatusCode
		return fmt.Sprint(resp.StatusCode)
	}
	out := "same port: GET / " + get("/", "http_root_status")
	if u.Path != "" && u.Path != "/" {
		out += ", GET " + u.Path + " " + get(u.Path, "http_path_status")
	}
	return out
}

// handshakeFailed explains a failed upgrade.
func (d *doctor) handshakeFailed(ch Check, err error) Check {
	ch.Status = Fail
	var herr *handshakeError
	errors.As(err, &herr)
	if herr != nil && herr.status != 0 {
		ch.Measured["status"] = herr.status
		ch.Summary = fmt.Sprintf("upgrade refused: HTTP %d %s", herr.status, herr.reason)
		ch.Hint = statusHint(herr.status, d.opts.Subprotocols)
		return ch
	}
	ch.Summary = "upgrade failed: " + err.Error()
	var (
		op  *net.OpError
		cv  *tls.CertificateVerificationError
		rhe tls.RecordHeaderError
	)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		ch.Hint = "nothing listens at this host and port: is the server running, and is the port right?"
	case errors.As(err, &cv):
		ch.Hint = "the server's certificate is not trusted: pass its CA with --ca-file, or --insecure for a test server"
	case errors.As(err, &rhe):
		ch.Hint = "the server does not speak TLS on this port: use ws:// instead of wss://"
	case errors.Is(err, ws.ErrHandshakeBadSubProtocol):
		ch.Hint = "the server selected a subprotocol the client did not offer; RFC 6455 requires it to pick one of the offered ones or none, and browsers abort such connections"
	case errors.As(err, &op) && op.Timeout(), errors.Is(err, errTimeout):
		ch.Hint = fmt.Sprintf("no upgrade within %s: a firewall may drop the packets, or the server is overloaded", human(d.opts.Timeout))
	default:
		ch.Hint = "the server did not complete a WebSocket upgrade: check the URL's scheme, host, port and path"
	}
	return ch
}

func statusHint(status int, offered []string) string {
	switch status {
	case http.StatusBadRequest:
		if len(offered) > 0 {
			return fmt.Sprintf("the server refused the upgrade; if it does not speak %s, run with --subprotocol '' or the subprotocol it expects", strings.Join(offered, ","))
		}
		return "the server refused the upgrade request as malformed: check the path and any required query parameters"
	case http.StatusUnauthorized:
		return "the server wants credentials with the upgrade: pass a token with --token"
	case http.StatusForbidden:
		return "the server refused this client: check its allowed origins and the credentials"
	case http.StatusNotFound:
		return "nothing is served at this path: check the URL's path (Herald serves /ws)"
	case http.StatusServiceUnavailable:
		return "the server is full or shutting down; it should say when to retry in Retry-After"
	case http.StatusOK, http.StatusMovedPermanently, http.StatusFound:
		return "this URL serves an ordinary page, not a WebSocket: check the path, and that any proxy in front passes the Upgrade and Connection headers"
	}
	return "the server answered the upgrade with an ordinary HTTP status: check the URL and any proxy in front of the server"
}

func msDuration(v int64) time.Duration { return time.Duration(v) * time.Millisecond }

// human formats a duration for a report line: 0.4ms, 12ms, 2.00s, 25.0s,
// 90s, 12m0s.
func human(d time.Duration) string {
	switch {
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000)
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < 10*time.Minute:
		return fmt.Sprintf("%.0fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}
