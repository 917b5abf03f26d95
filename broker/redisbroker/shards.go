package redisbroker

import (
	"context"
	"fmt"
	"hash/maphash"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldhq/herald/broker"
)

// shards is the feed on Redis Cluster: each channel of the set is
// SSUBSCRIBEd on the primary of its slot, over the client's connection to
// that node, by a goroutine of its own (watch) that subscribes again
// whenever the subscription ends: its node failed or was failed over, its
// slot moved (Redis then ends the subscription itself), or the connection
// was lost. The client follows MOVED, ASK and topology changes, so the new
// subscription lands on the slot's primary of the moment. A shard that is
// down holds up only its own channels.
type shards struct {
	b    *Broker
	stop chan struct{} // closed by close
	seed maphash.Seed
	// calls serializes subscribe and unsubscribe per channel (striped).
	calls [64]sync.Mutex

	mu       sync.Mutex
	channels map[string]*shardSub
	watchers sync.WaitGroup
}

// shardSub is the subscription of one channel of the set.
type shardSub struct {
	ctx    context.Context // ends with unsubscribe
	cancel context.CancelFunc
	done   chan struct{} // closed when its watch returned

	mu      sync.Mutex
	up      bool          // Redis confirmed it and it has not ended since
	changed chan struct{} // closed and replaced when up changes
}

func newShards(b *Broker) *shards {
	return &shards{b: b, stop: make(chan struct{}), seed: maphash.MakeSeed(), channels: make(map[string]*shardSub)}
}

func (s *shards) lockCalls(channel string) *sync.Mutex {
	mu := &s.calls[maphash.String(s.seed, channel)%uint64(len(s.calls))]
	mu.Lock()
	return mu
}

// close ends every subscription and waits for their goroutines.
func (s *shards) close() {
	close(s.stop)
	s.mu.Lock()
	for _, sub := range s.channels {
		sub.cancel()
	}
	s.mu.Unlock()
	s.watchers.Wait()
}

// isUp reports true: one shard being down makes only its channels
// unavailable, which their calls report.
func (s *shards) isUp() bool { return true }

// waitUp waits until a node of the cluster answers, at most d.
func (s *shards) waitUp(ctx context.Context, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		err := s.b.client.Do(ctx, s.b.client.B().Ping().Build()).Error()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: redis cluster: %w", broker.ErrUnavailable, err)
		case <-time.After(minBackoff):
		}
	}
}

func (s *shards) held() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Keys(s.channels))
}

// subscribe adds channel to the set, starting its watch, and waits up to
// Options.Timeout until Redis confirmed its subscription.
func (s *shards) subscribe(ctx context.Context, channel string) error {
	defer s.lockCalls(channel).Unlock()
	s.b.seen.hold(channel)
	s.mu.Lock()
	sub := s.channels[channel]
	if sub == nil {
		sub = &shardSub{done: make(chan struct{}), changed: make(chan struct{})}
		sub.ctx, sub.cancel = context.WithCancel(context.Background())
		s.channels[channel] = sub
		s.watchers.Add(1)
		go s.watch(channel, sub)
	}
	s.mu.Unlock()
	ctx, cancel := s.b.opContext(ctx)
	defer cancel()
	for {
		sub.mu.Lock()
		up, changed := sub.up, sub.changed
		sub.mu.Unlock()
		if up {
			return nil
		}
		select {
		case <-changed:
		case <-s.stop:
			return broker.ErrClosed
		case <-ctx.Done():
			return fmt.Errorf("%w: redis cluster: the shard of %s did not confirm the subscription", broker.ErrUnavailable, channel)
		}
	}
}

// unsubscribe removes channel from the set, ends its watch and waits
// until Redis no longer sends its publications, so that a subscribe that
// follows cannot be undone by this one's SUNSUBSCRIBE.
func (s *shards) unsubscribe(ctx context.Context, channel string) error {
	defer s.lockCalls(channel).Unlock()
	s.b.seen.drop(channel)
	s.mu.Lock()
	sub := s.channels[channel]
	delete(s.channels, channel)
	s.mu.Unlock()
	if sub == nil {
		return nil
	}
	sub.cancel()
	<-sub.done
	ctx, cancel := s.b.opContext(ctx)
	defer cancel()
	err := s.b.client.Do(ctx, s.b.client.B().Sunsubscribe().Channel(s.b.pubName(channel)).Build()).Error()
	if err != nil {
		return s.b.wrap(ctx, "unsubscribe", err)
	}
	return nil
}

// watch keeps channel subscribed until unsubscribe or close.
func (s *shards) watch(channel string, sub *shardSub) {
	defer s.watchers.Done()
	defer close(sub.done)
	name := s.b.pubName(channel)
	current := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.channels[channel] == sub
	}
	var lost atomic.Bool // the subscription was up and ended
	confirmed := rueidis.WithOnSubscriptionHook(sub.ctx, func(ps rueidis.PubSubSubscription) {
		if ps.Kind == "ssubscribe" && ps.Channel == name {
			sub.setUp(true)
			if lost.Swap(false) {
				s.watchers.Add(1)
				go func() {
					defer s.watchers.Done()
					s.b.catchUp(channel, current)
				}()
			}
		}
	})
	for attempt := 0; ; attempt++ {
		cmd := s.b.client.B().Ssubscribe().Channel(name).Build()
		err := s.b.client.Receive(confirmed, cmd, func(m rueidis.PubSubMessage) {
			if p, ok := s.b.decodeLive(channel, m.Message); ok {
				s.b.deliverLive(p, current)
			}
		})
		wasUp := sub.setUp(false)
		if sub.ctx.Err() != nil {
			return
		}
		if wasUp {
			attempt = 0
			lost.Store(true)
			s.b.log.Warn("redis cluster: a shard subscription ended; subscribing again", "channel", channel, "err", err)
		}
		d := min(minBackoff<<min(attempt, 8), maxBackoff)
		select {
		case <-sub.ctx.Done():
			return
		case <-time.After(d/2 + rand.N(d/2+1)):
		}
	}
}

// setUp records whether the subscription is up and returns what it was.
func (sub *shardSub) setUp(up bool) bool {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	was := sub.up
	if was != up {
		sub.up = up
		close(sub.changed)
		sub.changed = make(chan struct{})
	}
	return was
}
