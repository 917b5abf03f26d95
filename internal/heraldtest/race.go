//go:build race

package heraldtest

// Race reports whether this binary was built with the race detector.
const Race = true
