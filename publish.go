package herald

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/protocol"
)

// PublishOptions are the options of one Server.Publish. A nil
// *PublishOptions means none.
type PublishOptions struct {
	// Key is the publish's idempotency key, at most protocol.MaxKeyBytes
	// bytes: a publish repeated with the same key within the channel's
	// history window is applied once, and answered with the first one's
	// position. Keys of Server.Publish share the HTTP API's scope, apart
	// from those of WebSocket clients. Empty means no key.
	Key string
}

// Publish publishes data, which must be JSON, to channel from the program
// that embeds the server, as POST /api/publish does: it is not subject to
// namespace access rules or rate limits. It returns the publication's
// position in the channel's stream. A channel name that is not valid, data
// that is not JSON or is larger than Options.MaxMessageBytes, and a key that
// is too long are refused before anything is published; these errors, and
// the broker's (unavailable, limit_exceeded, internal), wrap a
// *protocol.Error whose Code says which (see errors.As). Publish is safe for
// concurrent use.
func (s *Server) Publish(ctx context.Context, channel string, data []byte, opts *PublishOptions) (broker.StreamPosition, error) {
	var key string
	if opts != nil {
		key = opts.Key
	}
	e := s.checkPublish(channel, data, key)
	if e != nil {
		return broker.StreamPosition{}, publishError(channel, e)
	}
	pos, err := s.broker.Publish(ctx, channel, data, broker.PublishOptions{Key: apiKeys.of(key)})
	if err != nil {
		return pos, publishError(channel, s.brokerProblem("publish", err, "channel", channel))
	}
	return pos, nil
}

func publishError(channel string, e *protocol.Error) error {
	return fmt.Errorf("herald: publish to %q: %w", channel, e)
}

// checkPublish applies the rules every publish from the application follows
// (Server.Publish and the HTTP API).
func (s *Server) checkPublish(channel string, data []byte, key string) *protocol.Error {
	if err := protocol.ValidateChannel(channel); err != nil {
		return &protocol.Error{Code: protocol.CodeInvalidChannel, Message: err.Error()}
	}
	switch {
	case data == nil:
		return &protocol.Error{Code: protocol.CodeBadRequest, Message: `missing field "data"`}
	case len(data) > s.opts.MaxMessageBytes:
		return &protocol.Error{Code: protocol.CodeBadRequest, Message: fmt.Sprintf("data larger than %d bytes", s.opts.MaxMessageBytes)}
	case !json.Valid(data):
		return &protocol.Error{Code: protocol.CodeBadRequest, Message: "data is not JSON"}
	case len(key) > protocol.MaxKeyBytes:
		return &protocol.Error{Code: protocol.CodeBadRequest, Message: fmt.Sprintf("key longer than %d bytes", protocol.MaxKeyBytes)}
	}
	return nil
}

// Disconnect closes every connection of user on this server with code (0
// means 1000) and reason, as POST /api/disconnect does, and returns how many
// it closed. Each connection's close frame follows the frames already
// queued for it. code must be 1000, 1001, 1011, 1013 or within 4000-4999;
// a client stops reconnecting after 4403 or 4500-4999 (see PROTOCOL.md,
// Close codes). A reason longer than a close frame holds (123 bytes) is
// cut. An empty user or a code that may not be sent is refused with an
// error wrapping a *protocol.Error (bad_request), and nothing is closed.
// Connections to other servers that share the broker are not affected.
func (s *Server) Disconnect(user string, code protocol.CloseCode, reason string) (int, error) {
	if code == 0 {
		code = protocol.CloseNormal
	}
	switch {
	case user == "":
		return 0, disconnectError(`"user" must name a user`)
	case !closeCodeSendable(code):
		return 0, disconnectError("code must be 1000, 1001, 1011, 1013 or within 4000-4999")
	}
	n := 0
	for _, sess := range s.snapshot() {
		if sess.user() == user {
			sess.close(code, reason)
			n++
		}
	}
	return n, nil
}

func disconnectError(msg string) error {
	return fmt.Errorf("herald: disconnect: %w", &protocol.Error{Code: protocol.CodeBadRequest, Message: msg})
}

func closeCodeSendable(c protocol.CloseCode) bool {
	switch c {
	case protocol.CloseNormal, protocol.CloseGoingAway, protocol.CloseInternal, protocol.CloseTryAgainLater:
		return true
	}
	return c >= 4000 && c <= 4999
}
