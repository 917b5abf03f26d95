package broker_test

import (
	"context"
	"fmt"
	"time"

	"github.com/heraldhq/herald/broker"
)

func ExampleNewMemory() {
	b := broker.NewMemory(&broker.MemoryOptions{
		History:    broker.HistoryOptions{Size: 100, TTL: time.Minute},
		Namespaces: map[string]broker.HistoryOptions{"chat": {Size: 1000}},
	})
	defer b.Close()
	ctx := context.Background()

	first, _ := b.Publish(ctx, "chat:lobby", []byte(`{"text":"hi"}`), broker.PublishOptions{Key: "k-1"})
	// A retry with the same key is not published again.
	retry, _ := b.Publish(ctx, "chat:lobby", []byte(`{"text":"hi"}`), broker.PublishOptions{Key: "k-1"})
	b.Publish(ctx, "chat:lobby", []byte(`{"text":"bye"}`), broker.PublishOptions{})

	// A client that saw the first message recovers what followed.
	missed, pos, err := b.History(ctx, "chat:lobby", first, 0)
	fmt.Println(first.Offset, retry.Offset, pos.Offset, err)
	for _, p := range missed {
		fmt.Println(p.Offset, string(p.Data))
	}
	// Output:
	// 1 1 2 <nil>
	// 2 {"text":"bye"}
}
