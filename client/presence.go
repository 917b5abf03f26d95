package client

import (
	"context"
	"fmt"

	"github.com/heraldhq/herald/protocol"
)

// Member is a client connection as the server knows it: its session id
// (StateChange.Session of that client) and, when it authenticated, its
// user id. It is a member of a channel's presence while subscribed to the
// channel, and it is who published a Message.
type Member struct {
	Client string `json:"client"`
	User   string `json:"user,omitempty"`
}

// PresenceOptions adjust a Presence call. A nil *PresenceOptions asks for
// the members and the counts.
type PresenceOptions struct {
	// CountOnly asks for the counts without the members.
	CountOnly bool
}

// Presence is who is subscribed to a channel, on every node of the service.
type Presence struct {
	Channel string
	// Clients counts the subscribed connections, Users the distinct user ids
	// among them (anonymous connections have none). Both are complete.
	Clients int
	Users   int
	// Members lists the connections, at most 1,000 of them: Truncated is
	// true when there are more. Empty with PresenceOptions.CountOnly.
	Members   []Member
	Truncated bool
}

// Presence returns who is subscribed to channel. It needs no subscription,
// but the same rights as subscribing to channel, and presence must be on for
// the channel's namespace (otherwise the error wraps a bad_request
// *protocol.Error). It waits for a connection like History.
func (c *Client) Presence(ctx context.Context, channel string, opts *PresenceOptions) (*Presence, error) {
	what := "presence " + channel
	if err := protocol.ValidateChannel(channel); err != nil {
		return nil, fmt.Errorf("herald: %s: %w", what,
			&protocol.Error{Code: protocol.CodeInvalidChannel, Message: err.Error()})
	}
	countOnly := opts != nil && opts.CountOnly
	f, err := c.askServer(ctx, what, func(id uint64) protocol.Frame {
		return &protocol.Presence{ID: id, Channel: channel, CountOnly: countOnly}
	})
	if err != nil {
		return nil, err
	}
	pf, ok := f.(*protocol.Present)
	if !ok {
		return nil, fmt.Errorf("herald: %s: server answered %s", what, f.Type())
	}
	p := &Presence{Channel: channel, Clients: pf.Clients, Users: pf.Users, Truncated: pf.Truncated}
	if len(pf.Members) > 0 {
		p.Members = make([]Member, len(pf.Members))
		for i, m := range pf.Members {
			p.Members[i] = Member(m)
		}
	}
	return p, nil
}

// OnJoin sets a callback for every connection that subscribes to the
// channel after this subscription did, on any node, when the channel's
// namespace has join-leave on. It runs in order with the subscription's
// messages. Joins and leaves are not part of the stream: those that happen
// while the client is disconnected are not replayed (ask Presence after a
// reconnect), and they are dropped while the handler is
// Options.HandlerQueue messages behind.
func OnJoin(f func(Member)) SubscribeOption {
	return func(s *Subscription) { s.onJoin = f }
}

// OnLeave sets a callback for every connection that stops being subscribed
// to the channel: it unsubscribed, closed, or was found dead. A node that
// dies without shutting down sends no leave for its members. It runs like
// OnJoin's.
func OnLeave(f func(Member)) SubscribeOption {
	return func(s *Subscription) { s.onLeave = f }
}

// onMemberLocked hands a join (leave false) or a leave to its
// subscription's callback.
func (c *Client) onMemberLocked(channel string, member protocol.Member, leave bool) {
	s := c.subs[channel]
	if s == nil {
		return
	}
	cb := s.onJoin
	if leave {
		cb = s.onLeave
	}
	if cb != nil {
		m := Member(member)
		s.q.pushBounded(func() { cb(m) }, c.opts.HandlerQueue)
	}
}
