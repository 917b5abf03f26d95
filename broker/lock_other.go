//go:build !unix && !windows

package broker

import "os"

// lockFile does nothing where the system offers no file lock: one broker at
// a time per data dir is then up to the operator.
func lockFile(f *os.File) error { return nil }
