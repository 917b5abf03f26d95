//go:build !unix

package main

// openFileLimit is 0: this system has no per-process descriptor limit to
// derive --max-connections from.
func openFileLimit() uint64 { return 0 }
