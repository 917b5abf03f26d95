//go:build unix

package main

import "syscall"

// openFileLimit is the process's soft RLIMIT_NOFILE (which Go raises to the
// hard limit at start), or 0 when it is unknown or unlimited.
func openFileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	if cur := uint64(rl.Cur); cur < 1<<40 { // RLIM_INFINITY is -1 or MaxInt64 by system
		return cur
	}
	return 0
}
