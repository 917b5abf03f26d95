package bench

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"time"
)

// ProcStat is what /proc tells about a process: CPU time used (user plus
// system) and resident memory.
type ProcStat struct {
	CPU time.Duration
	RSS int64 // bytes
}

// clockTick is the unit of /proc/PID/stat's CPU times (USER_HZ), 100 on
// every Linux system Go runs on.
const clockTick = 10 * time.Millisecond

// ReadProc reads pid's CPU time from /proc/PID/stat and its RSS from
// /proc/PID/status.
func ReadProc(pid int) (ProcStat, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcStat{}, err
	}
	// Fields after the command name, which ends with the last ')': state
	// is field 3, utime 14, stime 15.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return ProcStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := bytes.Fields(stat[i+1:])
	if len(f) < 13 {
		return ProcStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return ProcStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	rss, err := readRSS(pid)
	return ProcStat{CPU: time.Duration(utime+stime) * clockTick, RSS: rss}, err
}

func readRSS(pid int) (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(status) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			kb, err := strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// cpuMeter measures the CPU this process and, when pid is not 0, the server
// use over a period.
type cpuMeter struct {
	pid         int
	start       time.Time
	self        time.Duration
	server      ProcStat
	serverError error
}

func startCPU(pid int) *cpuMeter {
	m := &cpuMeter{pid: pid, start: time.Now(), self: selfCPU()}
	if pid != 0 {
		m.server, m.serverError = ReadProc(pid)
	}
	return m
}

// CPUUse is the CPU time a process used over a period, and the share of one
// core that is.
type CPUUse struct {
	CPU      Millis  `json:"cpu_ms"`
	CoreUsed float64 `json:"core_share"` // 1.0 = one core busy all the time
}

// stop returns the CPU used since start by this process and the server
// (zero without a pid or when /proc could not be read).
func (m *cpuMeter) stop() (self, server CPUUse, err error) {
	wall := time.Since(m.start)
	d := selfCPU() - m.self
	self = CPUUse{Millis(d), float64(d) / float64(wall)}
	if m.pid == 0 {
		return self, server, nil
	}
	if m.serverError != nil {
		return self, server, m.serverError
	}
	now, err := ReadProc(m.pid)
	if err != nil {
		return self, server, err
	}
	d = now.CPU - m.server.CPU
	return self, CPUUse{Millis(d), float64(d) / float64(wall)}, nil
}

// checkListens returns an error when /proc shows that pid does not listen
// on the TCP port of wsURL: a --server-pid of a wrapper (a shell, taskset
// before exec) would silently measure the wrong process. It returns nil
// when it cannot tell.
func checkListens(pid int, wsURL string) error {
	u, err := url.Parse(wsURL)
	if err != nil || u.Port() == "" {
		return nil
	}
	port, err := strconv.ParseUint(u.Port(), 10, 16)
	if err != nil {
		return nil
	}
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, _ := os.ReadFile(f)
		for line := range bytes.Lines(data) {
			// sl local_address rem_address st ... inode
			fields := bytes.Fields(line)
			if len(fields) < 10 || string(fields[3]) != "0A" { // LISTEN
				continue
			}
			_, p, ok := bytes.Cut(fields[1], []byte(":"))
			if v, err := strconv.ParseUint(string(p), 16, 16); ok && err == nil && v == port {
				inodes["socket:["+string(fields[9])+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return nil // not listening on this machine's namespace, or unreadable
	}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	for _, fd := range fds {
		if target, err := os.Readlink(dir + "/" + fd.Name()); err == nil && inodes[target] {
			return nil
		}
	}
	return fmt.Errorf("process %d does not listen on port %d: give the server's own pid", pid, port)
}
