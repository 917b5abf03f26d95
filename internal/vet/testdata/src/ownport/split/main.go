// A program that serves its pages on :8080 and WebSocket on :8081.
package main

import (
	"net/http"

	"github.com/gorilla/websocket"
)

var upgrader = websocket.Upgrader{}

func serveWS(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil) // want "ws-heartbeat" "ws-read-limit"
	if err != nil {
		return
	}
	c.Close()
}

func main() {
	pages := http.NewServeMux()
	pages.Handle("/", http.FileServer(http.Dir(".")))
	go http.ListenAndServe(":8080", pages)

	ws := &http.Server{Addr: ":8081", Handler: http.HandlerFunc(serveWS)}
	ws.ListenAndServe() // want "ws-own-port"
}
