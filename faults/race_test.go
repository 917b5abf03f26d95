//go:build race

package faults_test

// raceEnabled builds the server and herald sub with the race detector when
// the suite itself runs with it.
const raceEnabled = true
