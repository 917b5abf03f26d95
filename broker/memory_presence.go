package broker

import (
	"context"
	"sync"
	"sync/atomic"
)

// LocalPresence keeps the members of the channels of one process, and
// announces joins and leaves to that process only. The memory broker keeps
// its presence in one; a server whose broker does not implement Presence
// uses one of its own. Create it with NewLocalPresence. Safe for
// concurrent use; deliver is called while the channel's members are
// locked, so that events of a channel arrive in order.
type LocalPresence struct {
	mu       sync.Mutex
	channels map[string]map[string]string // channel: client: user
	watcher  atomic.Pointer[func(PresenceEvent)]
	watching atomic.Bool
}

// NewLocalPresence returns an empty LocalPresence.
func NewLocalPresence() *LocalPresence {
	return &LocalPresence{channels: make(map[string]map[string]string)}
}

// Join implements Presence.
func (p *LocalPresence) Join(ctx context.Context, channel string, m Member, announce int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	members := p.channels[channel]
	if members == nil {
		members = make(map[string]string)
		p.channels[channel] = members
	}
	if _, ok := members[m.Client]; ok {
		return nil
	}
	members[m.Client] = m.User
	if len(members) <= announce {
		p.announce(PresenceEvent{Channel: channel, Member: m})
	}
	return nil
}

// Leave implements Presence.
func (p *LocalPresence) Leave(ctx context.Context, channel string, m Member, announce int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	members := p.channels[channel]
	user, ok := members[m.Client]
	if !ok {
		return nil
	}
	n := len(members)
	delete(members, m.Client)
	if len(members) == 0 {
		delete(p.channels, channel)
	}
	if n <= announce {
		p.announce(PresenceEvent{Channel: channel, Member: Member{Client: m.Client, User: user}, Left: true})
	}
	return nil
}

func (p *LocalPresence) announce(ev PresenceEvent) {
	if f := p.watcher.Load(); f != nil {
		(*f)(ev)
	}
}

// Members implements Presence.
func (p *LocalPresence) Members(ctx context.Context, channel string, limit int) (PresenceState, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return presenceState(p.channels[channel], limit), nil
}

// WatchPresence implements Presence. It returns when ctx ends.
func (p *LocalPresence) WatchPresence(ctx context.Context, deliver func(PresenceEvent)) error {
	return p.watch(ctx, nil, deliver)
}

// Watching implements WatchReporter.
func (p *LocalPresence) Watching() bool { return p.watcher.Load() != nil }

// watch delivers events until ctx ends or done is closed (then ErrClosed).
func (p *LocalPresence) watch(ctx context.Context, done <-chan struct{}, deliver func(PresenceEvent)) error {
	if deliver == nil {
		return ErrNoDeliver
	}
	if !p.watching.CompareAndSwap(false, true) {
		return ErrRunning
	}
	p.watcher.Store(&deliver)
	defer func() {
		p.mu.Lock() // waits for the delivery in flight
		p.watcher.Store(nil)
		p.mu.Unlock()
		p.watching.Store(false)
	}()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-done:
		return ErrClosed
	}
}

// The memory broker's presence: its LocalPresence, created with it.

// Join implements Presence.
func (m *Memory) Join(ctx context.Context, channel string, mem Member, announce int) error {
	if m.closed.Load() {
		return ErrClosed
	}
	return m.presence.Join(ctx, channel, mem, announce)
}

// Leave implements Presence.
func (m *Memory) Leave(ctx context.Context, channel string, mem Member, announce int) error {
	if m.closed.Load() {
		return ErrClosed
	}
	return m.presence.Leave(ctx, channel, mem, announce)
}

// Members implements Presence.
func (m *Memory) Members(ctx context.Context, channel string, limit int) (PresenceState, error) {
	if m.closed.Load() {
		return PresenceState{}, ErrClosed
	}
	return m.presence.Members(ctx, channel, limit)
}

// Watching implements WatchReporter.
func (m *Memory) Watching() bool { return m.presence.Watching() }

// WatchPresence implements Presence: announced joins and leaves are
// delivered on the goroutine that called Join or Leave. It returns
// ErrClosed when the broker is closed.
func (m *Memory) WatchPresence(ctx context.Context, deliver func(PresenceEvent)) error {
	if m.closed.Load() {
		return ErrClosed
	}
	return m.presence.watch(ctx, m.done, deliver)
}
