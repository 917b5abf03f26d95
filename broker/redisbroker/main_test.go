package redisbroker_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run when a goroutine outlives the tests: a broker's
// Close must stop its pub/sub loop, its keep-alive and the Redis client.
// The Redis client's cluster mode leaves two timers of its own running
// after a topology change (a delayed refresh, and the closing of the
// connections to nodes that left, 5 s later), which end by themselves.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2"),
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"),
	)
}
