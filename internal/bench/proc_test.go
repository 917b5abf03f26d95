package bench

import (
	"net"
	"os"
	"testing"
	"time"
)

func TestReadProc(t *testing.T) {
	st, err := ReadProc(os.Getpid())
	if err != nil || st.RSS <= 0 {
		t.Fatalf("ReadProc(self) = %+v, %v", st, err)
	}
	start := time.Now()
	for time.Since(start) < 50*time.Millisecond {
	}
	if st2, _ := ReadProc(os.Getpid()); st2.CPU <= st.CPU {
		t.Errorf("CPU time did not grow after 50 ms of work: %v then %v", st.CPU, st2.CPU)
	}
}

// TestCheckListens tells the process that listens on a port from one that
// does not, as herald bench --server-pid does.
func TestCheckListens(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	url := "ws://" + ln.Addr().String() + "/ws"
	if err := checkListens(os.Getpid(), url); err != nil {
		t.Errorf("the listening process: %v", err)
	}
	if err := checkListens(os.Getppid(), url); err == nil {
		t.Error("the parent process passed as listening")
	}
}
