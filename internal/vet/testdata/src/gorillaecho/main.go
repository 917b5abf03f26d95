// In the shape of gorilla/websocket's echo example: upgrade, then read and
// write back in one loop. No heartbeat and no read limit: both reported.
package main

import (
	"log"
	"net/http"

	"github.com/gorilla/websocket"
)

var upgrader = websocket.Upgrader{}

func echo(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil) // want "ws-heartbeat" "ws-read-limit"
	if err != nil {
		log.Print("upgrade: ", err)
		return
	}
	defer c.Close()
	for {
		mt, msg, err := c.ReadMessage()
		if err != nil {
			log.Println("read: ", err)
			return
		}
		if err := c.WriteMessage(mt, msg); err != nil {
			log.Println("write: ", err)
			return
		}
	}
}

func main() {
	http.HandleFunc("/echo", echo)
	log.Fatal(http.ListenAndServe("localhost:8080", nil))
}
