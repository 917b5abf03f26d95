package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldhq/herald/broker"
)

// Presence lives in one sorted set per channel, P presence:{CH}: each
// member is "CLIENT USER" (USER empty for an anonymous connection), scored
// with the Redis time in milliseconds at which it expires. The node that
// holds a member refreshes its score every refresh period; a node that
// dies stops refreshing, and its members are dropped by the next read or
// write of the set once their time is past. The set itself expires with
// its newest member. Joins and leaves travel on the channel's pub/sub
// name, next to its publications, as "J CLIENT USER" and "L CLIENT USER",
// which no publication (it starts with its offset) can be mistaken for.

// presenceNow is the Lua prelude of the presence scripts: it drops the
// expired members of KEYS[1].
const presenceNow = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
`

// joinScript adds ARGV[1] (the member) to KEYS[1] for ARGV[2] ms and, when
// it was not there and the set then holds at most ARGV[3] members,
// publishes ARGV[5] on ARGV[4] with the command ARGV[6] (see
// publishScript).
var joinScript = rueidis.NewLuaScript(presenceNow + `
local added = redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if added == 1 and redis.call('ZCARD', KEYS[1]) <= tonumber(ARGV[3]) then
  redis.call(ARGV[6], ARGV[4], ARGV[5])
end
return added
`)

// leaveScript removes ARGV[1] from KEYS[1] and, when it was there and the
// set held at most ARGV[2] members with it, publishes ARGV[4] on ARGV[3]
// with the command ARGV[5].
var leaveScript = rueidis.NewLuaScript(presenceNow + `
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
if removed == 1 and redis.call('ZCARD', KEYS[1]) + 1 <= tonumber(ARGV[2]) then
  redis.call(ARGV[5], ARGV[3], ARGV[4])
end
return removed
`)

// refreshScript sets the expiry of the members ARGV[2..] of KEYS[1] to
// ARGV[1] ms from now, adding those that were lost (a Redis restart).
var refreshScript = rueidis.NewLuaScript(presenceNow + `
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
`)

// membersScript returns {clients, users, member...}: the counts, and at
// most ARGV[1] members.
var membersScript = rueidis.NewLuaScript(presenceNow + `
local all = redis.call('ZRANGE', KEYS[1], 0, -1)
local limit = tonumber(ARGV[1])
local users, nusers = {}, 0
local out = {#all, 0}
for i, m in ipairs(all) do
  local user = string.match(m, '^[^ ]* (.*)$')
  if user and user ~= '' and not users[user] then
    users[user] = true
    nusers = nusers + 1
  end
  if i <= limit then
    out[#out + 1] = m
  end
end
out[2] = nusers
return out
`)

// presence is what the node keeps of its own members, to refresh them and
// to remove them on Close.
type presence struct {
	ttl time.Duration

	mu       sync.Mutex
	channels map[string]*localMembers

	watcher  atomic.Pointer[func(broker.PresenceEvent)]
	watching atomic.Bool
	watchMu  sync.Mutex // held around every call of the watcher
}

// localMembers are the node's members of one channel, client: user, and
// the announce bound of their last join, which their leave on Close uses.
type localMembers struct {
	members  map[string]string
	announce int
}

func newPresence(ttl time.Duration) *presence {
	if ttl <= 0 {
		ttl = broker.DefaultPresenceTTL
	}
	return &presence{ttl: ttl, channels: make(map[string]*localMembers)}
}

func (b *Broker) presenceKey(channel string) []string {
	return []string{b.prefix + "presence:{" + channel + "}"}
}

func encodeMember(m broker.Member) string { return m.Client + " " + m.User }

func decodeMember(s string) broker.Member {
	client, user, _ := strings.Cut(s, " ")
	return broker.Member{Client: client, User: user}
}

// Join implements broker.Presence. The node refreshes the member until
// Leave or Close, so the member is kept even when this call fails.
func (b *Broker) Join(ctx context.Context, channel string, m broker.Member, announce int) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	p := b.presence
	p.mu.Lock()
	lm := p.channels[channel]
	if lm == nil {
		lm = &localMembers{members: make(map[string]string)}
		p.channels[channel] = lm
	}
	lm.members[m.Client], lm.announce = m.User, announce
	p.mu.Unlock()
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	err := joinScript.Exec(ctx, b.client, b.presenceKey(channel), []string{
		encodeMember(m), millis(p.ttl), strconv.Itoa(announce), b.pubName(channel), "J " + encodeMember(m), b.publishCommand(),
	}).Error()
	if err != nil {
		return b.wrap(ctx, "join", err)
	}
	return nil
}

// Leave implements broker.Presence. A member this node did not join is
// left alone: its node refreshes it until it leaves there.
func (b *Broker) Leave(ctx context.Context, channel string, m broker.Member, announce int) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	p := b.presence
	p.mu.Lock()
	lm := p.channels[channel]
	user, ok := "", false
	if lm != nil {
		user, ok = lm.members[m.Client]
		delete(lm.members, m.Client)
		if len(lm.members) == 0 {
			delete(p.channels, channel)
		}
	}
	p.mu.Unlock()
	if !ok {
		return nil
	}
	return b.leave(ctx, channel, broker.Member{Client: m.Client, User: user}, announce)
}

func (b *Broker) leave(ctx context.Context, channel string, m broker.Member, announce int) error {
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	err := leaveScript.Exec(ctx, b.client, b.presenceKey(channel), []string{
		encodeMember(m), strconv.Itoa(announce), b.pubName(channel), "L " + encodeMember(m), b.publishCommand(),
	}).Error()
	if err != nil {
		return b.wrap(ctx, "leave", err)
	}
	return nil
}

// Members implements broker.Presence: the members of every node.
func (b *Broker) Members(ctx context.Context, channel string, limit int) (broker.PresenceState, error) {
	if b.closed.Load() {
		return broker.PresenceState{}, broker.ErrClosed
	}
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	vals, err := membersScript.Exec(ctx, b.client, b.presenceKey(channel), []string{strconv.Itoa(max(limit, 0))}).ToArray()
	if err != nil {
		return broker.PresenceState{}, b.wrap(ctx, "presence", err)
	}
	var st broker.PresenceState
	clients, err1 := vals[0].AsInt64()
	users, err2 := vals[1].AsInt64()
	if err := errors.Join(err1, err2); err != nil {
		return broker.PresenceState{}, fmt.Errorf("herald: redisbroker: presence: %w", err)
	}
	st.Clients, st.Users = int(clients), int(users)
	for _, v := range vals[2:] {
		m, err := v.ToString()
		if err != nil {
			return broker.PresenceState{}, fmt.Errorf("herald: redisbroker: presence: %w", err)
		}
		st.Members = append(st.Members, decodeMember(m))
	}
	return st, nil
}

// Watching implements broker.WatchReporter.
func (b *Broker) Watching() bool { return b.presence.watcher.Load() != nil }

// WatchPresence implements broker.Presence: joins and leaves are delivered
// on the goroutine that reads the pub/sub connection, in order with the
// channel's publications.
func (b *Broker) WatchPresence(ctx context.Context, deliver func(broker.PresenceEvent)) error {
	if deliver == nil {
		return broker.ErrNoDeliver
	}
	if b.closed.Load() {
		return broker.ErrClosed
	}
	p := b.presence
	if !p.watching.CompareAndSwap(false, true) {
		return broker.ErrRunning
	}
	p.watcher.Store(&deliver)
	defer func() {
		p.watchMu.Lock() // waits for the delivery in flight
		p.watcher.Store(nil)
		p.watchMu.Unlock()
		p.watching.Store(false)
	}()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-b.done:
		return broker.ErrClosed
	}
}

// presenceMessage delivers a join or leave that came on channel's pub/sub
// name, and reports whether msg was one.
func (b *Broker) presenceMessage(channel, msg string) bool {
	kind, member, ok := strings.Cut(msg, " ")
	if !ok || (kind != "J" && kind != "L") {
		return false
	}
	p := b.presence
	p.watchMu.Lock()
	defer p.watchMu.Unlock()
	if f := p.watcher.Load(); f != nil {
		(*f)(broker.PresenceEvent{Channel: channel, Member: decodeMember(member), Left: kind == "L"})
	}
	return true
}

// refreshPresence refreshes the node's members every 5/12 of the presence
// TTL (25 s of 60 s) until Close.
func (b *Broker) refreshPresence() {
	defer b.stopped.Done()
	t := time.NewTicker(b.presence.ttl * 5 / 12)
	defer t.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-t.C:
			b.refreshMembers()
		}
	}
}

// refreshMembers extends the life of every member of this node.
func (b *Broker) refreshMembers() {
	p := b.presence
	p.mu.Lock()
	execs := make([]rueidis.LuaExec, 0, len(p.channels))
	for ch, lm := range p.channels {
		args := make([]string, 1, len(lm.members)+1)
		args[0] = millis(p.ttl)
		for client, user := range lm.members {
			args = append(args, client+" "+user)
		}
		execs = append(execs, rueidis.LuaExec{Keys: b.presenceKey(ch), Args: args})
	}
	p.mu.Unlock()
	for len(execs) > 0 {
		n := min(len(execs), subscribeBatch)
		ctx, cancel := b.opContext(context.Background())
		for _, r := range refreshScript.ExecMulti(ctx, b.client, execs[:n]...) {
			if err := r.Error(); err != nil {
				b.log.Warn("redis: refreshing presence failed", "err", err)
				break
			}
		}
		cancel()
		execs = execs[n:]
	}
}

// removeMembers removes the node's members that are left when the broker
// closes, announcing their leave as their join was.
func (b *Broker) removeMembers() {
	p := b.presence
	p.mu.Lock()
	channels := p.channels
	p.channels = make(map[string]*localMembers)
	p.mu.Unlock()
	for ch, lm := range channels {
		for client, user := range lm.members {
			if err := b.leave(context.Background(), ch, broker.Member{Client: client, User: user}, lm.announce); err != nil {
				b.log.Warn("redis: removing presence on close failed", "channel", ch, "err", err)
			}
		}
	}
}
