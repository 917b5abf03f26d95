//go:build !unix

package bench

import "time"

// selfCPU is 0 where getrusage is missing: the load side's CPU is then not
// reported.
func selfCPU() time.Duration { return 0 }
