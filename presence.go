package herald

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/protocol"
)

// Presence (PROTOCOL.md, Presence): in a namespace with presence on, a
// subscribed connection is a member of its channel from the moment its
// subscribed reply is queued (joinPresence) until its subscription ends
// (leavePresence), for whatever reason: unsubscribe, close, heartbeat. The
// members live in the broker, which answers for every node; a broker
// without broker.Presence gets a broker.LocalPresence of the server's own.
// With join-leave on, the broker announces each join and leave to every
// node, and each node sends it to the channel's local subscribers but the
// member (presenceEvent). A channel with more than MaxJoinLeaveMembers
// members announces nothing, which bounds the frames a crowd joining at
// once makes: below the bound n joins cost at most n²/2 frames.

// DefaultMaxJoinLeaveMembers is the default of
// NamespaceOptions.MaxJoinLeaveMembers.
const DefaultMaxJoinLeaveMembers = 1000

// AnyNamespace is the key of Options.Namespaces whose Presence,
// JoinLeave and MaxJoinLeaveMembers apply to every namespace without an
// entry of its own ("*" is no namespace: channel names cannot hold it).
// Its Subscribe, Publish and History are not read.
const AnyNamespace = "*"

// errPresenceOff is the answer to presence in a namespace without it.
const errPresenceOff = "presence is off for this namespace"

// presence returns the server's presence keeper.
func (srv *Server) presence() broker.Presence {
	srv.presenceOnce.Do(func() {
		if p, ok := srv.broker.(broker.Presence); ok {
			srv.presenceKeeper = p
		} else {
			srv.presenceKeeper = broker.NewLocalPresence()
		}
	})
	return srv.presenceKeeper
}

// presenceOn reports whether channel's namespace keeps presence, and the
// announce bound of its joins and leaves for broker.Presence (0: none).
func (srv *Server) presenceOn(channel string) (on bool, announce int) {
	ns, ok := srv.opts.Namespaces[protocol.Namespace(channel)]
	if !ok {
		ns = srv.opts.Namespaces[AnyNamespace]
	}
	if !ns.Presence {
		return false, 0
	}
	if !ns.JoinLeave {
		return true, 0
	}
	switch {
	case ns.MaxJoinLeaveMembers == 0:
		return true, DefaultMaxJoinLeaveMembers
	case ns.MaxJoinLeaveMembers < 0:
		return true, math.MaxInt
	}
	return true, ns.MaxJoinLeaveMembers
}

// member is the connection as presence and a publication's from name it.
func (s *session) member() broker.Member {
	return broker.Member{Client: s.id, User: s.identity.User}
}

// joinPresence makes the connection a member of ch, unless it already held
// the subscription. A broker that fails keeps it as a member all the same
// (it refreshes its members), so the subscribe goes on.
func (s *session) joinPresence(ctx context.Context, ch string, held bool) {
	on, announce := s.srv.presenceOn(ch)
	if !on || held {
		return
	}
	if err := s.srv.presence().Join(ctx, ch, s.member(), announce); err != nil {
		s.srv.log.Warn("presence join failed", "session", s.id, "channel", ch, "err", err)
	}
}

// leavePresence removes the connection from ch's members.
func (s *session) leavePresence(ch string) {
	on, announce := s.srv.presenceOn(ch)
	if !on {
		return
	}
	ctx, cancel := context.WithTimeout(s.srv.ctx, s.srv.opts.WriteTimeout)
	defer cancel()
	if err := s.srv.presence().Leave(ctx, ch, s.member(), announce); err != nil {
		s.srv.log.Warn("presence leave failed", "session", s.id, "channel", ch, "err", err)
	}
}

// presenceRequest answers presence with present: whoever may subscribe to
// the channel may ask.
func (s *session) presenceRequest(ctx context.Context, req *protocol.Presence) {
	if on, _ := s.srv.presenceOn(req.Channel); !on {
		s.replyError(req.ID, protocol.CodeBadRequest, errPresenceOff)
		return
	}
	if e := s.authorize(ActionSubscribe, req.Channel); e != nil {
		e.ID = req.ID
		s.reply(e)
		return
	}
	st, err := s.srv.members(ctx, req.Channel, req.CountOnly)
	if err != nil {
		s.brokerError(req.ID, "presence", err)
		return
	}
	s.send(&protocol.Present{ID: req.ID, Channel: req.Channel, Clients: st.Clients, Users: st.Users, Members: st.Members, Truncated: len(st.Members) < st.Clients && !req.CountOnly})
}

// members reads channel's presence: complete counts and, unless countOnly,
// at most protocol.MaxPresenceMembers members.
func (srv *Server) members(ctx context.Context, channel string, countOnly bool) (broker.PresenceState, error) {
	limit := protocol.MaxPresenceMembers
	if countOnly {
		limit = 0
	}
	return srv.presence().Members(ctx, channel, limit)
}

// presenceEvent sends an announced join or leave to the channel's local
// subscribers, but not to the member itself, unless they are more than the
// namespace's bound (subscribers that are still joining count here before
// they count as members). The frame is built once.
func (srv *Server) presenceEvent(ev broker.PresenceEvent) {
	_, most := srv.presenceOn(ev.Channel)
	h := srv.hub
	h.mu.RLock()
	defer h.mu.RUnlock()
	subs := h.channels[ev.Channel]
	if len(subs) == 0 || len(subs) > most {
		return
	}
	var f protocol.Frame = &protocol.Join{Channel: ev.Channel, Member: ev.Member}
	if ev.Left {
		f = &protocol.Leave{Channel: ev.Channel, Member: ev.Member}
	}
	payload, err := protocol.Encode(f)
	if err != nil {
		return // cannot happen: a channel and two strings always encode
	}
	frame := sharedFrame{plain: buildFrame(ws.OpText, payload)}
	for s := range subs {
		if s.id != ev.Member.Client {
			f := frame.to(s)
			s.mu.Lock()
			s.enqueueLocked(f)
			s.mu.Unlock()
		}
	}
}

// runPresence starts delivering the broker's joins and leaves to local
// subscribers until the server closes; the channel it returns is closed as
// the loop first calls the broker.
func (srv *Server) runPresence() <-chan struct{} {
	started := make(chan struct{})
	srv.bg.Add(1)
	go func() {
		defer srv.bg.Done()
		close(started)
		for {
			err := srv.presence().WatchPresence(srv.ctx, srv.presenceEvent)
			if srv.ctx.Err() != nil || errors.Is(err, broker.ErrClosed) {
				return
			}
			srv.log.Warn("presence loop stopped; restarting", "err", err)
			select {
			case <-srv.ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
	return started
}
