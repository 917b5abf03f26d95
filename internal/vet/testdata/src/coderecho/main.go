// In the shape of coder/websocket's echo example: a handler type whose
// ServeHTTP accepts, and each read-and-write-back bounded by a context
// timeout. coder/websocket limits reads to 32 KiB by default. Nothing is
// reported.
package main

import (
	"context"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/coder/websocket"
)

type echoer struct{}

func (echoer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"echo"}})
	if err != nil {
		log.Print(err)
		return
	}
	defer c.CloseNow()
	for echoOnce(c) == nil {
	}
}

func echoOnce(c *websocket.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil {
		return err
	}
	return c.Write(ctx, typ, b)
}

func main() {
	l, err := net.Listen("tcp", "localhost:0")
	if err != nil {
		log.Fatal(err)
	}
	s := &http.Server{Handler: echoer{}}
	log.Fatal(s.Serve(l))
}
