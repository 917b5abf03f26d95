package validate

import (
	"encoding/json"
	"log"

	"github.com/gorilla/websocket"
)

type msg struct {
	Type string `json:"type"`
	Body string `json:"body"`
}

func bad(c *websocket.Conn, data []byte) {
	var m msg
	json.Unmarshal(data, &m) // want "ws-validate: decoding error ignored"
	_ = c.ReadJSON(&m)       // want "decoding error ignored"
	switch m.Type {          // want "switch on the message type with no default"
	case "chat":
	case "join":
	}
}

func good(c *websocket.Conn, data []byte) {
	var m msg
	if err := json.Unmarshal(data, &m); err != nil {
		log.Print(err)
		return
	}
	switch m.Type {
	case "chat":
	default:
		log.Printf("unknown type %q", m.Type)
	}
	switch m.Body { // not a type field
	case "x":
	}
}

func silenced(data []byte) {
	var m msg
	//herald:vet-ignore ws-validate the bytes were validated by the caller
	json.Unmarshal(data, &m)
	//herald:vet-ignore ws-validate
	json.Unmarshal(data, &m) // want "decoding error ignored"
}
