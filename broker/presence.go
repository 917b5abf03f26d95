package broker

import (
	"context"
	"time"

	"github.com/heraldhq/herald/protocol"
)

// Member is one subscribed connection of a channel: its session id (Client)
// and, when authenticated, its user id.
type Member = protocol.Member

// PresenceState is who is subscribed to a channel. Clients and Users are
// complete counts (Users counts distinct non-empty user ids); Members holds
// at most the limit Members was asked for, in no particular order.
type PresenceState struct {
	Clients int
	Users   int
	Members []Member
}

// PresenceEvent is a join or leave of a channel, announced to every node
// subscribed to the channel.
type PresenceEvent struct {
	Channel string
	Member  Member
	Left    bool // false: the member joined
}

// DefaultPresenceTTL is how long a node's members outlive the node's last
// refresh (redisbroker.Options.PresenceTTL); a node refreshes them every
// 5/12 of it (25 s of 60 s).
const DefaultPresenceTTL = 60 * time.Second

// Presence is implemented by brokers that keep who is subscribed to a
// channel, for the whole service, and announce joins and leaves to every
// node. The server uses it for the namespaces with presence on; with a
// broker that does not implement it, the server keeps presence of its own
// node only (NewLocalPresence).
//
// A member is identified by its Client: Join of a member already present
// changes nothing and announces nothing; Leave needs only the Client.
type Presence interface {
	// Join adds m to channel's members. When it was not a member yet and
	// the channel then has at most announce members, the join is announced
	// (announce <= 0: never).
	Join(ctx context.Context, channel string, m Member, announce int) error
	// Leave removes the member whose Client is m.Client. When it was a
	// member and the channel had at most announce members with it, the
	// leave is announced (announce <= 0: never).
	Leave(ctx context.Context, channel string, m Member, announce int) error
	// Members returns the channel's members: complete counts and at most
	// limit members (limit <= 0: none).
	Members(ctx context.Context, channel string, limit int) (PresenceState, error)
	// WatchPresence calls deliver with the joins and leaves announced on
	// the channels this node subscribed to (Broker.Subscribe), until ctx
	// ends or the broker is closed. deliver must not block. Only one
	// WatchPresence may be active; another returns ErrRunning.
	WatchPresence(ctx context.Context, deliver func(PresenceEvent)) error
}

// presenceState counts members and lists at most limit of them.
func presenceState(members map[string]string, limit int) PresenceState {
	st := PresenceState{Clients: len(members)}
	users := make(map[string]struct{})
	for client, user := range members {
		if user != "" {
			users[user] = struct{}{}
		}
		if len(st.Members) < limit {
			st.Members = append(st.Members, Member{Client: client, User: user})
		}
	}
	st.Users = len(users)
	return st
}
