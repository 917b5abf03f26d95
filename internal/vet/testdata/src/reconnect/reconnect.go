package reconnect

import (
	"math/rand/v2"
	"time"

	"github.com/gorilla/websocket"
)

func setup(c *websocket.Conn) {
	c.SetReadLimit(1 << 16)
	c.SetReadDeadline(time.Now().Add(time.Minute))
}

func constant(url string) {
	for {
		c, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err == nil {
			setup(c)
			c.ReadMessage()
		}
		time.Sleep(2 * time.Second) // want "ws-reconnect: reconnect with a constant delay"
	}
}

func constantVar(url string) {
	delay := time.Second
	for {
		if _, _, err := websocket.DefaultDialer.Dial(url, nil); err != nil {
			time.Sleep(delay) // want "constant delay"
		}
	}
}

func noJitter(url string) {
	delay := time.Second
	for {
		if _, _, err := websocket.DefaultDialer.Dial(url, nil); err != nil {
			time.Sleep(delay) // want "exponential backoff without jitter"
			delay = min(delay*2, time.Minute)
		}
	}
}

func capAfterJitter(url string) {
	for attempt := 0; ; attempt++ {
		if _, _, err := websocket.DefaultDialer.Dial(url, nil); err != nil {
			d := time.Second<<attempt + rand.N(time.Second)
			d = min(d, 30*time.Second) // want "jitter added before the cap"
			time.Sleep(d)
		}
	}
}

// fullJitter caps first and draws below the cap: not reported.
func fullJitter(url string) {
	for attempt := 0; ; attempt++ {
		if _, _, err := websocket.DefaultDialer.Dial(url, nil); err != nil {
			time.Sleep(backoff(attempt))
		}
	}
}

func backoff(attempt int) time.Duration {
	ceil := min(time.Second<<min(attempt, 10), 30*time.Second)
	return rand.N(ceil)
}

func resetOnOpen(url string) {
	attempt := 0
	for {
		c, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			attempt++
			time.Sleep(backoff(attempt))
			continue
		}
		attempt = 0 // want "attempt counter reset as soon as the dial succeeds"
		setup(c)
		c.ReadMessage()
	}
}

// resetWhenStable resets only after the connection held a minute.
func resetWhenStable(url string) {
	attempt := 0
	for {
		c, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			attempt++
			time.Sleep(backoff(attempt))
			continue
		}
		start := time.Now()
		setup(c)
		c.ReadMessage()
		if time.Since(start) > time.Minute {
			attempt = 0
		}
	}
}
