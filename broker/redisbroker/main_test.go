package redisbroker_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run when a goroutine outlives the tests: a broker's
// Close must stop its pub/sub loop, its keep-alive and the Redis client.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
