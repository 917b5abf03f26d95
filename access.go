package herald

import (
	"fmt"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/protocol"
)

// Access says who may perform an action in a namespace.
type Access string

const (
	AccessAll   Access = "all"   // every connection, anonymous included (the default)
	AccessUsers Access = "users" // authenticated connections only
	AccessNone  Access = "none"  // no connection; the HTTP API still may publish
)

// Action is what a connection asks to do on a channel.
type Action string

const (
	ActionSubscribe Action = "subscribe"
	ActionPublish   Action = "publish"
)

// NamespaceOptions are the rules of the channels of one namespace (the part
// of a channel name before its first ':').
type NamespaceOptions struct {
	// Subscribe and Publish say who may subscribe and publish. Empty means
	// AccessAll. A token's channels claim, when present, narrows this further.
	Subscribe Access
	Publish   Access
	// History is the namespace's entry in the broker.HistoryPolicy of the
	// memory broker the server creates when Options.Broker is nil. Zero
	// fields take the defaults. It is not read otherwise: a broker given in
	// Options.Broker has its own policy (broker.MemoryOptions.Namespaces,
	// redisbroker.Options.Namespaces).
	History broker.HistoryOptions
	// Presence keeps who is subscribed to the namespace's channels, which
	// a presence request reads (PROTOCOL.md, Presence). Off by default.
	Presence bool
	// JoinLeave, with Presence, sends join and leave events to the other
	// subscribers of a channel when a connection subscribes and when its
	// subscription ends, on channels of at most MaxJoinLeaveMembers
	// members. Zero MaxJoinLeaveMembers means DefaultMaxJoinLeaveMembers;
	// negative means no bound. The entry AnyNamespace sets these three
	// for the namespaces without an entry.
	JoinLeave           bool
	MaxJoinLeaveMembers int
}

// authorize applies the rules for action on channel: the token's channel
// list, the namespace's access, then the Authorize hook.
func (s *session) authorize(action Action, channel string) *protocol.Error {
	id := s.identity
	if !id.Allows(channel) {
		return &protocol.Error{Code: protocol.CodeForbidden, Message: fmt.Sprintf("token does not allow %s to %s", action, channel)}
	}
	ns := s.srv.opts.Namespaces[protocol.Namespace(channel)]
	access := ns.Subscribe
	if action == ActionPublish {
		access = ns.Publish
	}
	switch access {
	case AccessNone:
		return &protocol.Error{Code: protocol.CodeForbidden, Message: fmt.Sprintf("%s to %s is not allowed", action, channel)}
	case AccessUsers:
		if id.Anonymous() {
			return &protocol.Error{Code: protocol.CodeUnauthorized, Message: fmt.Sprintf("%s to %s needs an authenticated connection", action, channel)}
		}
	}
	if s.srv.opts.Authorize != nil && !s.srv.opts.Authorize(id, action, channel) {
		return &protocol.Error{Code: protocol.CodeForbidden, Message: fmt.Sprintf("%s to %s is not allowed", action, channel)}
	}
	return nil
}
