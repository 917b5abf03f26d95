package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/heraldhq/herald/protocol"
)

// refreshMinLead is how long before a token's exp the client refreshes it at
// the latest, when the token lives long enough for that: it absorbs a slow
// token callback, a round trip, and a little clock skew.
const refreshMinLead = 5 * time.Second

// tokenExpiry returns the exp claim of a JWT. The signature is not checked:
// the client only uses exp to refresh the token before the server closes the
// connection at that time. ok is false when token is not a JWT with a
// numeric exp.
func tokenExpiry(token string) (exp time.Time, ok bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp *float64 `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp == nil ||
		math.IsNaN(*claims.Exp) || math.IsInf(*claims.Exp, 0) || *claims.Exp <= 0 || *claims.Exp > 1<<40 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(*claims.Exp)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// tokenExpired reports whether token is a JWT whose exp has passed by the
// local clock.
func tokenExpired(token string, now time.Time) bool {
	exp, ok := tokenExpiry(token)
	return ok && !now.Before(exp)
}

// refreshDelay returns how long after now to refresh a token that is valid
// for remaining more: at 80-90 % of it (random, so that clients given tokens
// at the same time do not all refresh at once), but at least refreshMinLead
// before exp, or halfway there for a token that lives less than twice that.
// r is random in [0, 1).
func refreshDelay(remaining time.Duration, r float64) time.Duration {
	if remaining <= 0 {
		return 0
	}
	lead := time.Duration(float64(remaining) * (0.1 + 0.1*r))
	lead = max(lead, min(refreshMinLead, remaining/2))
	return remaining - lead
}

// keepFresh refreshes the token of the connection cn, which was opened with
// token, until ctx ends. When the token is a JWT with an exp and
// Options.TokenFunc is set, it asks TokenFunc for a new token ahead of exp
// (see refreshDelay) and sends it in a refresh request; once the server
// confirms it, it is the token the client reconnects with, and the next
// refresh is planned from its expiry. A failed refresh (the callback fails
// or returns the same token, or the server refuses the new one) is given to
// Options.OnError and tried again after a backoff delay, cut to half of the
// time left before exp; the server keeps the old token meanwhile.
func (c *Client) keepFresh(ctx context.Context, cn *conn, token string) {
	exp, ok := tokenExpiry(token)
	if !ok || c.opts.TokenFunc == nil {
		return
	}
	at := c.refreshAt(exp)
	failures := 0
	for sleepUntil(ctx, at) {
		next, newExp, err := c.refreshToken(ctx, cn, token)
		switch {
		case ctx.Err() != nil || errors.Is(err, errConnLost):
			return // the connection ended: the next one starts over
		case errors.Is(err, ErrUnauthorized):
			cn.fail(err) // the client stops with it (reconnector.next)
			return
		case err != nil:
			c.reportError(err)
			var pe *protocol.Error
			var wait time.Duration
			if errors.As(err, &pe) && pe.Code == protocol.CodeRateLimited {
				wait = time.Duration(max(pe.RetryAfterMS, 1)) * time.Millisecond
			} else {
				wait = c.opts.Backoff.Delay(failures)
				if left := time.Until(exp); left > 0 {
					wait = min(wait, left/2) // another try before exp
				}
				failures++
			}
			at = wallClock().Add(max(wait, c.opts.Backoff.Floor))
		default:
			c.log.Debug("herald: token refreshed", "url", c.url, "expires", newExp)
			token, exp, failures = next, newExp, 0
			if exp.IsZero() {
				return // the new token does not expire
			}
			at = c.refreshAt(exp)
		}
	}
}

// refreshAt returns when to refresh a token that expires at exp (see
// refreshDelay), and not sooner than Backoff.Floor from now.
func (c *Client) refreshAt(exp time.Time) time.Time {
	now := wallClock()
	return now.Add(max(refreshDelay(exp.Sub(now), rand.Float64()), c.opts.Backoff.Floor))
}

// wallClock returns the time without its monotonic reading, so that waits
// until it follow the wall clock, as token expiry does.
func wallClock() time.Time { return time.Now().Round(0) }

// refreshToken gets a new token from Options.TokenFunc and sends it on cn in
// a refresh request. It returns the new token and its expiry (zero when it
// has none) once the server confirmed it; the client then connects with it.
func (c *Client) refreshToken(ctx context.Context, cn *conn, old string) (string, time.Time, error) {
	tok, err := c.askToken(ctx)
	switch {
	case err != nil:
		return "", time.Time{}, fmt.Errorf("herald: token refresh: %w", err)
	case tok == old:
		return "", time.Time{}, errors.New("herald: token refresh: token callback returned the token in use")
	}
	answer := make(chan protocol.Frame, 1)
	c.mu.Lock()
	if c.conn != cn {
		c.mu.Unlock()
		return "", time.Time{}, errConnLost
	}
	id := c.newID()
	c.calls[id] = &call{
		reply: func(f protocol.Frame) {
			if _, ok := f.(*protocol.Refreshed); ok {
				c.token = tok // under c.mu, before a reconnect can read it
			}
			answer <- f
		},
		lost: func() { answer <- nil },
	}
	cn.send(&protocol.Refresh{ID: id, Token: tok})
	c.mu.Unlock()

	var f protocol.Frame
	select {
	case f = <-answer:
	case <-ctx.Done():
		return "", time.Time{}, ctx.Err()
	}
	switch f := f.(type) {
	case *protocol.Refreshed:
		if f.ExpiresAt > 0 {
			return tok, time.Unix(f.ExpiresAt, 0), nil
		}
		exp, _ := tokenExpiry(tok)
		return tok, exp, nil
	case *protocol.Error:
		return "", time.Time{}, fmt.Errorf("herald: token refresh: %w", f)
	}
	return "", time.Time{}, errConnLost
}

// errConnLost ends a refresh whose connection ended before the answer.
var errConnLost = errors.New("herald: token refresh: connection lost")

// askToken calls Options.TokenFunc, bounded by Options.DialTimeout. It
// returns when ctx ends even if the callback does not; the callback then
// finishes on its own.
func (c *Client) askToken(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	defer cancel()
	type result struct {
		tok string
		err error
	}
	done := make(chan result, 1)
	go func() {
		tok, err := c.opts.TokenFunc(ctx)
		done <- result{tok, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		r.err = ctx.Err()
	}
	switch {
	case r.err != nil:
		return "", fmt.Errorf("token callback: %w", r.err)
	case r.tok == "":
		return "", errors.New("token callback returned no token")
	}
	return r.tok, nil
}

// reportError logs err and gives it to Options.OnError.
func (c *Client) reportError(err error) {
	c.log.Warn("herald: error", "url", c.url, "err", err)
	if f := c.opts.OnError; f != nil {
		c.events.push(func() { f(err) })
	}
}

// sleepUntil waits until the wall clock reaches at, and reports whether ctx
// is still alive. It looks at the clock at least once a minute, so that a
// clock that jumped or a machine that slept does not make it late by much.
func sleepUntil(ctx context.Context, at time.Time) bool {
	for {
		d := time.Until(at)
		if d <= 0 || ctx.Err() != nil {
			return ctx.Err() == nil
		}
		if !sleep(ctx, min(d, time.Minute)) {
			return false
		}
	}
}
