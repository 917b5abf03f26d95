package protocol_test

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/heraldhq/herald/protocol"
)

func ExampleDecode() {
	frame, err := protocol.Decode([]byte(`{"type":"publish","id":4,"channel":"chat","data":{"text":"hi"}}`))
	if err != nil {
		panic(err)
	}
	switch f := frame.(type) {
	case *protocol.Publish:
		fmt.Printf("publish #%d to %s: %s\n", f.ID, f.Channel, f.Data)
	}

	// A frame that fails is answered with the error as it comes back.
	_, err = protocol.Decode([]byte(`{"type":"subscribe","id":5,"channel":"chat room"}`))
	var perr *protocol.Error
	if errors.As(err, &perr) {
		reply, _ := protocol.Encode(perr)
		fmt.Println(perr.Code, perr.ID)
		fmt.Println(string(reply))
	}
	// Output:
	// publish #4 to chat: {"text":"hi"}
	// invalid_channel 5
	// {"type":"error","id":5,"code":"invalid_channel","message":"channel name may only hold A-Z a-z 0-9 _ - . : @ / ="}
}

func ExampleEncode() {
	recovered := true
	frames := []protocol.Frame{
		&protocol.Subscribed{ID: 2, Channel: "chat", Epoch: "e7Kq", Offset: 44, Recovered: &recovered},
		&protocol.Message{Channel: "chat", Offset: 45, Data: json.RawMessage(`{"text":"hi"}`)},
		&protocol.Pong{ID: 5},
	}
	for _, f := range frames {
		b, err := protocol.Encode(f)
		if err != nil {
			panic(err)
		}
		fmt.Println(string(b))
	}
	// Output:
	// {"type":"subscribed","id":2,"channel":"chat","epoch":"e7Kq","offset":44,"recovered":true}
	// {"type":"message","channel":"chat","offset":45,"data":{"text":"hi"}}
	// {"type":"pong","id":5}
}
