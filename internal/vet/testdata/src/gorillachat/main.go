// In the shape of gorilla/websocket's chat example: a read pump that limits
// messages and extends its deadline on each pong, a write pump that is the
// only writer and pings on a ticker, the page and the socket on one mux.
// Nothing is reported.
package main

import (
	"log"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

const (
	pongWait   = time.Minute
	pingPeriod = pongWait * 9 / 10
	maxSize    = 1024
)

var upgrader = websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024}

type member struct {
	conn *websocket.Conn
	out  chan []byte
	room chan []byte
}

func (m *member) reads() {
	defer m.conn.Close()
	m.conn.SetReadLimit(maxSize)
	m.conn.SetReadDeadline(time.Now().Add(pongWait))
	m.conn.SetPongHandler(func(string) error { return m.conn.SetReadDeadline(time.Now().Add(pongWait)) })
	for {
		_, msg, err := m.conn.ReadMessage()
		if err != nil {
			return
		}
		m.room <- msg
	}
}

func (m *member) writes() {
	t := time.NewTicker(pingPeriod)
	defer t.Stop()
	for {
		select {
		case msg, ok := <-m.out:
			if !ok {
				return
			}
			if err := m.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
				return
			}
		case <-t.C:
			if err := m.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		}
	}
}

func join(room chan []byte, w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		log.Println(err)
		return
	}
	m := &member{conn: c, out: make(chan []byte, 64), room: room}
	go m.writes()
	go m.reads()
}

func main() {
	room := make(chan []byte)
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, "home.html") })
	http.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) { join(room, w, r) })
	log.Fatal(http.ListenAndServe(":8080", nil))
}
