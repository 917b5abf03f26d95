//go:build race

package redisbroker_test

// raceFlag builds the herald binary with the race detector when the tests
// run with it.
var raceFlag = []string{"-race"}
