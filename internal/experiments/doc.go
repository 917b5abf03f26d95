// Package experiments holds one-off measurement programs whose results are
// recorded in docs/BENCHMARKS.md. Nothing imports them; they are not part of
// the herald command.
package experiments
