package writers

import (
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

func setup(c *websocket.Conn) {
	c.SetReadLimit(1 << 16)
	c.SetReadDeadline(time.Now().Add(time.Minute))
}

func pingerRaces(c *websocket.Conn, out chan []byte) {
	go func() {
		for range time.Tick(time.Second) {
			c.WriteMessage(websocket.PingMessage, nil) // want "ws-concurrent-write"
		}
	}()
	for m := range out {
		c.WriteMessage(websocket.TextMessage, m)
	}
}

func perMessageGoroutine(c *websocket.Conn, out chan []byte) {
	for m := range out {
		go func() {
			c.WriteMessage(websocket.TextMessage, m) // want "ws-concurrent-write"
		}()
	}
}

// WriteControl may be called concurrently: not reported.
func pingerControl(c *websocket.Conn, out chan []byte) {
	go func() {
		for range time.Tick(time.Second) {
			c.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second))
		}
	}()
	for m := range out {
		c.WriteMessage(websocket.TextMessage, m)
	}
}

type locked struct {
	mu   sync.Mutex
	conn *websocket.Conn
}

// With a lock around every write: not reported.
func (l *locked) run(out chan []byte) {
	go func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.conn.WriteMessage(websocket.PingMessage, nil)
	}()
	for m := range out {
		l.mu.Lock()
		l.conn.WriteMessage(websocket.TextMessage, m)
		l.mu.Unlock()
	}
}

// One writer goroutine: not reported.
func oneWriter(c *websocket.Conn, out chan []byte) {
	go func() {
		for m := range out {
			c.WriteMessage(websocket.TextMessage, m)
		}
	}()
}
