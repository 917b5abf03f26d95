// The same program with both on one mux, and a second port for the
// WebSocket-only admin mux that is not next to an HTTP server: not reported.
package main

import (
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

var upgrader = websocket.Upgrader{}

func serveWS(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c.SetReadLimit(1 << 16)
	c.SetReadDeadline(time.Now().Add(time.Minute))
	c.Close()
}

func main() {
	mux := http.NewServeMux()
	mux.Handle("/", http.FileServer(http.Dir(".")))
	mux.HandleFunc("/ws", serveWS)
	http.ListenAndServe(":8080", mux)
}
