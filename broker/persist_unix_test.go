//go:build unix

package broker_test

import (
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/broker"
)

// TestMemoryFileMovedBeforeLoading holds the load in the middle of reading
// the streams file (a named pipe) and checks that the file is no longer
// where the next start would load it from: a crash while loading, such as
// running out of memory, must not make every restart load it again.
func TestMemoryFileMovedBeforeLoading(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(streamsFile(dir), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan *broker.Memory)
	go func() { done <- broker.NewMemory(&broker.MemoryOptions{DataDir: dir}) }()
	moved := false
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if !exists(t, streamsFile(dir)) && exists(t, streamsFile(dir)+".loading") {
			moved = true
			break
		}
	}
	if !moved {
		t.Error("streams.json still in place while it is being loaded")
	}
	// Let the load finish: write a file through whichever name it has now.
	w, err := os.OpenFile(streamsFile(dir)+".loading", os.O_WRONLY, 0)
	if err != nil {
		w, err = os.OpenFile(streamsFile(dir), os.O_WRONLY, 0)
	}
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString(`{"version":1,"saved_at":1,"streams":[{"channel":"ch","epoch":"e","offset":3,"active":` +
		strconv.FormatInt(time.Now().UnixNano(), 10) + `}]}`)
	w.Close()
	m := <-done
	defer m.Close()
	if moved {
		if pos := mustPosition(t, m, "ch"); pos != (broker.StreamPosition{Epoch: "e", Offset: 3}) {
			t.Errorf("Position after the load = %v, want e/3", pos)
		}
		if exists(t, streamsFile(dir)+".loading") {
			t.Error(".loading left after a load that finished")
		}
	}
}
