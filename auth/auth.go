// Package auth holds who a Herald connection is and what it may do: the
// Identity, token verification with JWTs, and channel patterns.
//
// Every error the package returns starts with "herald: ": what follows it
// in an error wrapping ErrInvalidToken is what the server tells a client
// whose token it refused.
package auth

import (
	"errors"
	"strings"
	"time"
)

// Identity is who a connection is and what its credentials allow.
type Identity struct {
	// User is the authenticated user (claim "sub"); empty for an anonymous
	// connection.
	User string
	// Channels, when not nil, lists the channel patterns ("chat:*", "news")
	// the connection may subscribe and publish to. nil leaves the decision to
	// the namespace rules.
	Channels []string
	// ExpiresAt is when the credentials expire; the server closes the
	// connection with 4001 then, unless a refresh brought newer ones. Zero
	// means never.
	ExpiresAt time.Time
}

// Anonymous reports whether the identity has no user.
func (id Identity) Anonymous() bool { return id.User == "" }

// Verifier turns a token into an Identity. Implementations are safe for
// concurrent use.
type Verifier interface {
	Verify(token string) (Identity, error)
}

// ErrInvalidToken wraps every reason a token is refused.
var ErrInvalidToken = errors.New("herald: invalid token")

// MatchChannel reports whether channel matches pattern: an exact name, or a
// pattern ending in '*' that matches every channel with that prefix
// ("chat:*" matches "chat:lobby"; "*" matches everything).
func MatchChannel(pattern, channel string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(channel, prefix)
	}
	return pattern == channel
}

// Allows reports whether the identity's channel list admits channel. An
// identity without a list admits every channel.
func (id Identity) Allows(channel string) bool {
	if id.Channels == nil {
		return true
	}
	for _, p := range id.Channels {
		if MatchChannel(p, channel) {
			return true
		}
	}
	return false
}
