package faults_test

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/heraldtest"
)

// heraldBin is the herald binary the scenarios run, built once by TestMain.
var heraldBin string

// scenarioLength is how long each scenario publishes (HERALD_FAULT_SECONDS).
var scenarioLength = 60 * time.Second

func enabled() bool { return os.Getenv("HERALD_FAULTS") == "1" }

func TestMain(m *testing.M) {
	if !enabled() {
		// Every test skips but the few rounds of TestCrashRestart.
		code := m.Run()
		if quickBinDir != "" {
			os.RemoveAll(quickBinDir)
		}
		os.Exit(code)
	}
	// The scenarios are mostly waiting: run them all at once unless
	// -parallel says otherwise.
	flag.Parse()
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		flag.Set("test.parallel", "16")
	}
	if s := os.Getenv("HERALD_FAULT_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 12 {
			fmt.Fprintf(os.Stderr, "HERALD_FAULT_SECONDS=%q: want a whole number of seconds, at least 12\n", s)
			os.Exit(2)
		}
		scenarioLength = time.Duration(n) * time.Second
	}
	dir, err := os.MkdirTemp("", "herald-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	code := run(m, dir)
	os.RemoveAll(dir)
	os.Exit(code)
}

func run(m *testing.M, dir string) int {
	bin, err := heraldtest.BuildHerald(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	heraldBin = bin
	start := time.Now()
	code := m.Run()
	if err := writeReport("report.txt", time.Since(start)); err != nil {
		fmt.Fprintln(os.Stderr, "writing report:", err)
		return 1
	}
	return code
}
