//go:build unix

// Command writefloor measures what one small socket write costs on this
// machine, outside Herald: it opens N loopback TCP connections to a reader
// process of its own, writes one frame-sized message to each of them in
// turn, R rounds, and prints the wall and CPU time per write. It is the
// floor under Herald's fan-out latency: a publication to N subscribers is N
// such writes when each subscriber's queue holds one frame.
//
//	taskset -c 0 go run ./internal/experiments/writefloor -n 5000 -rounds 40
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"
)

func main() {
	n := flag.Int("n", 5000, "connections")
	rounds := flag.Int("rounds", 40, "rounds of one write per connection")
	size := flag.Int("size", 110, "bytes per write (a 100-byte message as a WebSocket frame)")
	gap := flag.Duration("gap", 50*time.Millisecond, "pause between rounds")
	readerCPU := flag.String("reader-cpu", "1", "CPU list for the reader process (taskset -c)")
	reader := flag.String("reader", "", "run as the reader process, dialing this address")
	unread := flag.Bool("unread", false, "the reader holds its connections without reading them, so no write wakes it")
	flag.Parse()
	if *reader != "" {
		read(*reader, *n, *unread)
		return
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	cmd := exec.Command("taskset", "-c", *readerCPU, os.Args[0], "-n", fmt.Sprint(*n), "-reader", ln.Addr().String(), fmt.Sprintf("-unread=%t", *unread))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	defer cmd.Process.Kill()
	fds := make([]int, 0, *n)
	for range *n {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		raw, _ := c.(*net.TCPConn).SyscallConn()
		raw.Control(func(fd uintptr) { fds = append(fds, int(fd)) })
		defer c.Close()
	}
	time.Sleep(time.Second)

	msg := make([]byte, *size)
	var wall time.Duration
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	for range *rounds {
		start := time.Now()
		for _, fd := range fds {
			if _, err := syscall.Write(fd, msg); err != nil && err != syscall.EAGAIN {
				log.Fatal(err)
			}
		}
		wall += time.Since(start)
		time.Sleep(*gap)
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano() - before.Utime.Nano() + after.Stime.Nano() - before.Stime.Nano())
	writes := float64(*n * *rounds)
	fmt.Printf("%d writes of %d B to %d connections: %.2f µs wall and %.2f µs CPU per write; a round takes %.1f ms\n",
		*n**rounds, *size, *n, float64(wall.Nanoseconds())/writes/1e3, float64(cpu.Nanoseconds())/writes/1e3,
		float64(wall.Milliseconds())/float64(*rounds))
}

// held keeps the reader's unread connections from the collector.
var held []net.Conn

// read dials n connections and discards what arrives on them, or, when
// unread, only holds them.
func read(addr string, n int, unread bool) {
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			log.Fatal(err)
		}
		if unread {
			held = append(held, c)
			continue
		}
		go func() {
			b := make([]byte, 4096)
			for {
				if _, err := c.Read(b); err != nil {
					os.Exit(0)
				}
			}
		}()
	}
	select {}
}
