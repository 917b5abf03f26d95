package herald

import (
	"net"
	"time"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald/protocol"
)

// The send path. Frames are complete WebSocket frames, often shared by every
// subscriber of a publication; they are never modified once queued. Enqueue
// never blocks: a writer goroutine is started when the queue goes from empty
// to non-empty and exits once it is empty again, so an idle connection has
// no writer. The writer sends everything queued in one writev. The hub
// holds the writer while it queues a batch of publications (holdWriterLocked),
// so that a burst goes out in one write however the broker delivered it.

// sendQueue is a session's send path. The queue fields are guarded by
// session.mu; the writer's fields are owned by the writer goroutine.
type sendQueue struct {
	queue    net.Buffers // frames waiting for the writer
	queued   int         // bytes in queue
	flushing bool        // a writer goroutine is running
	held     bool        // the writer starts at releaseWriter, not at the next frame
	flushFn  func()      // the session's flush, bound once
	replays  int         // subscriptions whose replay the writer feeds (subscription.go)

	// Owned by the writer.
	batch    net.Buffers   // the frames being written; its array is the next queue's
	deadline time.Duration // the write deadline last set, on the heartbeat clock
}

// enqueueLocked queues a frame for the writer. A full queue closes the
// connection with 4008. s.mu must be held.
func (s *session) enqueueLocked(frame []byte) {
	if s.closing {
		return
	}
	if s.queued+len(frame) > s.srv.opts.SendQueueBytes {
		s.dropAndCloseLocked(protocol.CloseSlowConsumer, "send queue overflow")
		return
	}
	s.pushLocked(frame)
}

func (s *session) pushLocked(frame []byte) {
	s.queue = append(s.queue, frame)
	s.queued += len(frame)
	if !s.flushing && !s.held {
		s.startWriterLocked()
	}
}

// holdWriterLocked keeps the writer from starting until releaseWriter, so
// that the frames of a batch of deliveries go out together. It reports
// whether it did: false when the writer runs already (it takes the frames
// as they come) or another batch holds it. A running writer is not
// stopped: batches that follow each other closely must not keep it from
// writing. s.mu must be held.
func (s *session) holdWriterLocked() bool {
	if s.flushing || s.held {
		return false
	}
	s.held = true
	return true
}

// releaseWriter ends holdWriterLocked, starting the writer for what was
// queued meanwhile.
func (s *session) releaseWriter() {
	s.mu.Lock()
	s.held = false
	if !s.flushing && len(s.queue) > 0 {
		s.startWriterLocked()
	}
	s.mu.Unlock()
}

// startWriterLocked starts the writer goroutine; it must not be running
// (ping may hold the writer's part while it starts it). s.mu must be held.
func (s *session) startWriterLocked() {
	s.flushing = true
	if s.flushFn == nil {
		s.flushFn = s.flush // go s.flush() would allocate a closure per batch
	}
	go s.flushFn()
}

// flush writes queued frames until the queue is empty and no replay is
// left to queue: each time the queue is empty, it queues the next piece of
// a replay (replayNext), so a replay goes at the pace of the client.
func (s *session) flush() {
	for {
		s.mu.Lock()
		for len(s.queue) == 0 && s.replays > 0 && !s.closing {
			s.mu.Unlock()
			s.replayNext()
			s.mu.Lock()
		}
		if len(s.queue) == 0 {
			s.flushing = false
			s.mu.Unlock()
			return
		}
		batch := s.queue
		s.queue, s.batch = s.batch[:0], batch
		s.queued = 0
		closing := s.closing
		s.mu.Unlock()

		s.setWriteDeadline()
		n, err := s.batch.WriteTo(s.conn) // consumes s.batch
		s.srv.metrics.framesSent.Add(float64(len(batch)))
		s.srv.metrics.writes.Inc()
		s.srv.metrics.sentBytes.Add(float64(n))
		clear(batch)
		s.batch = batch[:0]

		s.mu.Lock()
		if err != nil {
			s.flushing = false
			s.queue, s.queued = nil, 0
			s.mu.Unlock()
			s.terminate("write failed: " + err.Error())
			return
		}
		if closing && len(s.queue) == 0 {
			s.flushing = false
			s.signalSentLocked()
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
	}
}

// setWriteDeadline gives the next write at least WriteTimeout. Setting a
// deadline costs a timer update in the runtime, so a batch written soon
// after the previous one keeps its deadline, which is then at most an
// eighth of WriteTimeout longer than that.
func (s *session) setWriteDeadline() {
	wt := s.srv.opts.WriteTimeout
	now := s.srv.heartbeat.now()
	if s.deadline-now >= wt {
		return
	}
	s.deadline = now + wt + wt/8
	s.conn.SetWriteDeadline(time.Now().Add(wt + wt/8))
}

// sendControl queues a ping or pong frame. They count against the queue
// limit like any frame, so a peer that floods pings without reading the
// pongs is a slow consumer.
func (s *session) sendControl(op ws.OpCode, payload []byte) {
	frame := buildFrame(op, payload)
	s.mu.Lock()
	s.enqueueLocked(frame)
	s.mu.Unlock()
}

// pingFrame is the server's ping: empty, unmasked. Frames are never
// modified once queued, so every ping is this one.
var pingFrame = buildFrame(ws.OpPing, nil)

// ping sends a ping frame and notes when, for the round-trip time. When
// nothing is queued and no writer runs, as on an idle connection, it writes
// the frame itself without blocking (writeNow), so that the heartbeat
// starts no goroutine and sets no write deadline for it; otherwise, or when
// the socket does not take the frame at once, the frame is queued for the
// writer like any other.
func (s *session) ping() {
	s.pingSent.Store(time.Now().UnixNano())
	s.mu.Lock()
	if s.closing || s.flushing || len(s.queue) > 0 || s.fd < 0 {
		s.enqueueLocked(pingFrame)
		s.mu.Unlock()
		return
	}
	s.flushing = true // this goroutine is the writer until it is done
	s.mu.Unlock()

	n, err := s.writeNow(pingFrame)
	if n > 0 {
		s.srv.metrics.framesSent.Inc()
		s.srv.metrics.writes.Inc()
		s.srv.metrics.sentBytes.Add(float64(n))
	}
	if err != nil {
		s.mu.Lock()
		s.flushing = false
		s.queue, s.queued = nil, 0
		s.mu.Unlock()
		s.terminate("write failed: " + err.Error())
		return
	}
	s.mu.Lock()
	if rest := pingFrame[n:]; len(rest) > 0 {
		s.queue = append(s.queue, nil)
		copy(s.queue[1:], s.queue)
		s.queue[0] = rest
		s.queued += len(rest)
	}
	// Frames queued meanwhile, the rest of the ping, or a replay started
	// meanwhile (replayLocked leaves it to the running writer) are the
	// writer's to send.
	if len(s.queue) > 0 || s.replays > 0 {
		s.startWriterLocked()
	} else {
		s.flushing = false
	}
	s.mu.Unlock()
}

// pong records the round-trip time of the last ping, once.
func (s *session) pong() {
	if sent := s.pingSent.Swap(0); sent != 0 {
		s.srv.metrics.pingRTT.Observe(time.Since(time.Unix(0, sent)).Seconds())
	}
}

// send encodes a reply frame and queues it.
func (s *session) send(f protocol.Frame) {
	payload, err := protocol.Encode(f)
	if err != nil {
		s.srv.log.Error("encode reply", "session", s.id, "err", err)
		return
	}
	frame := s.outgoing(buildFrame(ws.OpText, payload))
	s.mu.Lock()
	s.enqueueLocked(frame)
	s.mu.Unlock()
}
