package broker

// Crash stops m as a killed process would stop: nothing is saved and the
// log is not forced to disk; the data dir is released.
func (m *Memory) Crash() {
	m.closeOnce.Do(func() {
		m.closed.Store(true)
		close(m.done)
		<-m.swept
		if m.wal != nil {
			m.wal.close(false)
		}
		m.unlockDataDir()
	})
}

// SweepNow runs one sweep of m.
func (m *Memory) SweepNow() { m.sweep(nil) }

// LogSyncs returns how many fsyncs m's log did for publishes.
func (m *Memory) LogSyncs() int64 { return m.wal.syncs.Load() }

// SetBootID makes the broker see id as the running boot until the
// returned func is called.
func SetBootID(id string) (restore func()) {
	old := bootID
	bootID = func() string { return id }
	return func() { bootID = old }
}

// SetSegmentBytes sets the size at which log segments are sealed until the
// returned func is called.
func SetSegmentBytes(n int64) (restore func()) {
	old := segmentBytes
	segmentBytes = n
	return func() { segmentBytes = old }
}
