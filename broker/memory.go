package broker

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"sync"
)

// Memory is the in-memory broker of a single node. The zero value is not
// usable; call NewMemory.
type Memory struct {
	mu       sync.Mutex
	channels map[string]*memStream
	deliver  func(Publication)
	closed   chan struct{}
	once     sync.Once
}

type memStream struct {
	mu     sync.Mutex
	epoch  string
	offset uint64
}

// NewMemory returns an empty memory broker.
func NewMemory() *Memory {
	return &Memory{channels: make(map[string]*memStream), closed: make(chan struct{})}
}

func (m *Memory) stream(channel string) *memStream {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.channels[channel]
	if !ok {
		s = &memStream{epoch: NewEpoch()}
		m.channels[channel] = s
	}
	return s
}

func (m *Memory) deliverFunc() func(Publication) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.deliver
}

// Publish implements Broker.
func (m *Memory) Publish(ctx context.Context, channel string, data []byte, opts PublishOptions) (StreamPosition, error) {
	select {
	case <-m.closed:
		return StreamPosition{}, ErrClosed
	default:
	}
	deliver := m.deliverFunc()
	s := m.stream(channel)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset++
	p := Publication{Channel: channel, Epoch: s.epoch, Offset: s.offset, Data: data}
	if deliver != nil {
		deliver(p)
	}
	return StreamPosition{Epoch: s.epoch, Offset: s.offset}, nil
}

// Position implements Broker.
func (m *Memory) Position(ctx context.Context, channel string) (StreamPosition, error) {
	s := m.stream(channel)
	s.mu.Lock()
	defer s.mu.Unlock()
	return StreamPosition{Epoch: s.epoch, Offset: s.offset}, nil
}

// History implements Broker.
func (m *Memory) History(ctx context.Context, channel string, since StreamPosition, limit int) ([]Publication, StreamPosition, error) {
	pos, _ := m.Position(ctx, channel)
	if since != pos {
		return nil, pos, ErrUnrecoverable
	}
	return nil, pos, nil
}

// Subscribe implements Broker; the memory broker delivers every channel.
func (m *Memory) Subscribe(ctx context.Context, channel string) error { return nil }

// Unsubscribe implements Broker.
func (m *Memory) Unsubscribe(ctx context.Context, channel string) error { return nil }

// Run implements Broker.
func (m *Memory) Run(ctx context.Context, deliver func(Publication)) error {
	m.mu.Lock()
	m.deliver = deliver
	m.mu.Unlock()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-m.closed:
		return ErrClosed
	}
}

// Close implements Broker.
func (m *Memory) Close() error {
	m.once.Do(func() { close(m.closed) })
	return nil
}

// NewEpoch returns a new random epoch string.
func NewEpoch() string {
	var b [6]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
