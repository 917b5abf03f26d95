// In the shape of coder/websocket's chat example: a subscriber connection
// that only writes, keeping CloseRead's reader for control frames. No ping
// and no read deadline: an idle subscriber whose peer vanished stays
// subscribed until a write fails, so the heartbeat finding is right.
package main

import (
	"context"
	"net/http"
	"time"

	"github.com/coder/websocket"
)

type server struct {
	mux  http.ServeMux
	msgs chan []byte
}

func (s *server) subscribe(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil) // want "ws-heartbeat"
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := c.CloseRead(r.Context())
	for {
		select {
		case m := <-s.msgs:
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := c.Write(wctx, 1, m)
			cancel()
			if err != nil {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

func main() {
	s := &server{msgs: make(chan []byte)}
	s.mux.Handle("/", http.FileServer(http.Dir(".")))
	s.mux.HandleFunc("/subscribe", s.subscribe)
	http.ListenAndServe(":8080", &s.mux)
}
