package faults_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// cleanSource is the address the publisher and the metrics scrapes use
// inside the namespace; the loss rules spare it. Subscribers connect from
// 127.0.0.1, the kernel's choice.
const cleanSource = "127.0.0.2"

// netns is a network namespace of the test's own with only a loopback
// interface, where the server runs and nftables drops packets.
type netns struct {
	name string
	path string
	ip   string // the ip and nft commands
	nft  string
}

// newNetns creates a namespace, or says why it cannot.
func newNetns(t *testing.T) (*netns, error) {
	n := &netns{name: fmt.Sprintf("herald-faults-%d", os.Getpid()), ip: sbin("ip"), nft: sbin("nft")}
	if n.ip == "" || n.nft == "" {
		return nil, errors.New("ip or nft is not installed (Debian packages iproute2 and nftables)")
	}
	n.path = "/run/netns/" + n.name
	if out, err := exec.Command(n.ip, "netns", "add", n.name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add: %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { exec.Command(n.ip, "netns", "del", n.name).Run() })
	if err := n.run("", n.ip, "link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	// Probe nftables and the namespace switch of this process once.
	if err := n.run("table inet herald_probe {}\ndelete table inet herald_probe\n", n.nft, "-f", "-"); err != nil {
		return nil, err
	}
	if _, err := n.dialer("")(context.Background(), "tcp", "127.0.0.1:1"); err != nil && !strings.Contains(err.Error(), "refused") {
		return nil, fmt.Errorf("dialing inside the namespace: %v", err)
	}
	return n, nil
}

// sbin finds a system tool on PATH or in /usr/sbin and /sbin, which a
// non-login PATH may lack; "" when it is not installed.
func sbin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if _, err := os.Stat(dir + "/" + name); err == nil {
			return dir + "/" + name
		}
	}
	return ""
}

// command returns a command that runs inside the namespace.
func (n *netns) command(name string, args ...string) *exec.Cmd {
	return exec.Command(n.ip, append([]string{"netns", "exec", n.name, name}, args...)...)
}

// run runs a command inside the namespace with stdin.
func (n *netns) run(stdin string, name string, args ...string) error {
	cmd := n.command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// setLoss makes nftables drop percent of the packets, each direction,
// between 127.0.0.1 and the server's port: the subscribers' traffic, not the
// publisher's (from cleanSource).
func (n *netns) setLoss(port, percent int) error {
	rules := fmt.Sprintf(`table inet herald_faults {
	chain output {
		type filter hook output priority 0; policy accept;
		ip saddr 127.0.0.1 ip daddr 127.0.0.1 tcp dport %[1]d numgen random mod 100 < %[2]d drop
		ip saddr 127.0.0.1 ip daddr 127.0.0.1 tcp sport %[1]d numgen random mod 100 < %[2]d drop
	}
}
`, port, percent)
	return n.run(rules, n.nft, "-f", "-")
}

func (n *netns) clearLoss() error {
	return n.run("", n.nft, "delete", "table", "inet", "herald_faults")
}

// dialer returns a dial function that opens its sockets inside the
// namespace, from source (empty: the kernel's choice). The socket is
// created on a thread switched into the namespace and stays there when the
// thread switches back.
func (n *netns) dialer(source string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		done := make(chan result, 1)
		go func() {
			runtime.LockOSThread()
			c, err, ok := n.dialIn(ctx, source, network, addr)
			if ok {
				runtime.UnlockOSThread() // else the thread, stuck in the namespace, ends with the goroutine
			}
			done <- result{c, err}
		}()
		r := <-done
		return r.c, r.err
	}
}

// dialIn dials from inside the namespace on the current, locked thread. ok
// reports whether the thread is back in its own namespace.
func (n *netns) dialIn(ctx context.Context, source, network, addr string) (c net.Conn, err error, ok bool) {
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, err, true
	}
	defer self.Close()
	target, err := os.Open(n.path)
	if err != nil {
		return nil, err, true
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("setns: %w", err), true
	}
	d := net.Dialer{}
	if source != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(source)}
	}
	c, err = d.DialContext(ctx, network, addr)
	if serr := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); serr != nil {
		return c, err, false
	}
	return c, err, true
}
