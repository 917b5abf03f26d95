package protocol

// Presence frame types (PROTOCOL.md, Presence).
const (
	TypePresence = "presence"
	TypePresent  = "present"
	TypeJoin     = "join"
	TypeLeave    = "leave"
)

// MaxPresenceMembers is the most members a present frame lists; the counts
// are complete whatever their number.
const MaxPresenceMembers = 1000

// Member is one subscribed connection of a channel: its session id and, when
// it is authenticated, its user id.
type Member struct {
	Client string `json:"client"`
	User   string `json:"user,omitempty"`
}

// Presence asks who is subscribed to Channel, on every node. With CountOnly
// the answer carries the counts without the members.
type Presence struct {
	ID        uint64 `json:"id,omitempty"`
	Channel   string `json:"channel"`
	CountOnly bool   `json:"count_only,omitempty"`
}

// Present answers Presence. Clients counts the subscribed connections,
// Users the distinct non-empty user ids among them. Members holds at most
// MaxPresenceMembers of them; Truncated is set when it does not hold all.
type Present struct {
	ID        uint64   `json:"id,omitempty"`
	Channel   string   `json:"channel"`
	Clients   int      `json:"clients"`
	Users     int      `json:"users"`
	Members   []Member `json:"members,omitempty"`
	Truncated bool     `json:"truncated,omitempty"`
}

// Join tells a channel's subscribers that Member subscribed to it.
type Join struct {
	Channel string `json:"channel"`
	Member  Member `json:"member"`
}

// Leave tells a channel's subscribers that Member is no longer subscribed:
// it unsubscribed, closed, or was found dead.
type Leave struct {
	Channel string `json:"channel"`
	Member  Member `json:"member"`
}

func (*Presence) Type() string { return TypePresence }
func (*Present) Type() string  { return TypePresent }
func (*Join) Type() string     { return TypeJoin }
func (*Leave) Type() string    { return TypeLeave }

func (f *Presence) RequestID() uint64 { return f.ID }
