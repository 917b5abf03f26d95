//go:build !race

package redisbroker_test

var raceFlag []string
