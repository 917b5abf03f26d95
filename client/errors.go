package client

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/protocol"
)

// Errors returned by the client. Errors the server sent in an error frame are
// returned wrapped around a *protocol.Error, so callers can read its Code with
// errors.As.
var (
	// ErrClosed is returned by calls on a client that was closed, by Close or
	// by a terminal close code (then the error also wraps the *CloseError).
	ErrClosed = errors.New("herald: client closed")
	// ErrQueueFull is returned at once by a Publish made while disconnected
	// when the offline queue already holds Options.QueueMessages messages or
	// Options.QueueBytes bytes.
	ErrQueueFull = errors.New("herald: offline publish queue full")
	// ErrQueueTimeout is returned by a Publish that waited in the offline
	// queue for Options.QueueTimeout without being confirmed. A publish that
	// had been sent before the connection dropped may still have been
	// applied; publishing it again with the same key is safe.
	ErrQueueTimeout = errors.New("herald: publish not confirmed within the offline queue timeout")
	// ErrTooLarge is returned by a Publish whose frame exceeds the server's
	// max_message_bytes; sending it would make the server close the
	// connection with 1009.
	ErrTooLarge = errors.New("herald: message larger than the server's max_message_bytes")
	// ErrAlreadySubscribed is returned by Subscribe for a channel the client
	// already holds a subscription to.
	ErrAlreadySubscribed = errors.New("herald: already subscribed to channel")
	// ErrUnsubscribed is what Subscription.Err returns after Unsubscribe.
	ErrUnsubscribed = errors.New("herald: unsubscribed")
	// ErrNoPong means the connection was dropped because the server sent
	// nothing for the ping interval plus the pong timeout.
	ErrNoPong = errors.New("herald: server silent past the ping interval and pong timeout")
	// ErrUnauthorized, returned by Options.TokenFunc (or wrapped in its
	// error), says the user may not connect any more: the client stops for
	// good with that error instead of asking again, closing its connection
	// if it has one. Dial returns it when the first call returns it.
	ErrUnauthorized = errors.New("herald: unauthorized")
	// ErrTokenRequired stops a client that has no token (neither
	// Options.Token nor Options.TokenFunc) when the server asks for one: it
	// closed the connection with 4001 or refused the upgrade with HTTP 401.
	// The error wraps the *CloseError or *HandshakeError as well.
	ErrTokenRequired = errors.New("herald: this server needs a token (Options.Token or Options.TokenFunc)")
)

// CloseError is a WebSocket close code the server ended a connection with.
type CloseError struct {
	Code   protocol.CloseCode
	Reason string
}

func (e *CloseError) Error() string {
	s := "herald: connection closed with " + strconv.Itoa(int(e.Code)) + " (" + e.Code.String() + ")"
	if e.Reason != "" && e.Reason != e.Code.String() {
		s += ": " + e.Reason
	}
	return s
}

// HandshakeError is an HTTP status the server answered the WebSocket upgrade
// with instead of 101. RetryAfter is the response's Retry-After, if any.
type HandshakeError struct {
	URL        string // the URL dialed
	Status     int
	RetryAfter time.Duration
	// ContentType and Location are the response's headers of those names.
	ContentType string
	Location    string
	// Body is the first line of a text/plain body (a Herald server says
	// there why it refused), at most 200 bytes.
	Body string
}

func (e *HandshakeError) Error() string {
	var b strings.Builder
	if e.Status < 400 {
		fmt.Fprintf(&b, "herald: %s answered HTTP %d", e.URL, e.Status)
		if mt, _, _ := mime.ParseMediaType(e.ContentType); mt != "" {
			b.WriteString(" " + mt)
		}
		if e.Location != "" {
			b.WriteString(" (Location: " + e.Location + ")")
		}
		b.WriteString(", not a WebSocket upgrade")
	} else {
		fmt.Fprintf(&b, "herald: upgrade refused with HTTP %d", e.Status)
		if e.Body != "" {
			b.WriteString(": " + e.Body)
		}
	}
	if (e.Status < 400 || e.Status == http.StatusNotFound) && rootPath(e.URL) {
		b.WriteString(": is the path /ws?")
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %v)", e.RetryAfter)
	}
	return b.String()
}

// rootPath reports whether a URL has no path, or just "/": a Herald server
// mounted as herald serve mounts it answers WebSocket upgrades at /ws.
func rootPath(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Path == "" || u.Path == "/")
}

// permanent reports whether an upgrade status says the URL or the request is
// wrong, so that trying again cannot help: a client error other than 401,
// 408, 425 and 429, or an answer that is no refusal at all (a page served
// at the URL, a redirect). Server errors (5xx) may pass.
func (e *HandshakeError) permanent() bool {
	switch e.Status {
	case 401, 408, 425, 429:
		return false
	}
	return e.Status < 500
}

// closedError returns the error calls on a closed client return: ErrClosed,
// wrapping cause when the client stopped because of one.
func closedError(cause error) error {
	if cause == nil {
		return ErrClosed
	}
	return fmt.Errorf("%w: %w", ErrClosed, cause)
}
