package herald

import "testing"

func TestRemoteIP(t *testing.T) {
	for remote, want := range map[string]string{
		"192.0.2.7:443":                 "192.0.2.7",
		"[::ffff:192.0.2.7]:443":        "192.0.2.7",
		"[2001:db8:1:2:aaaa::1]:5000":   "2001:db8:1:2::/64",
		"[2001:db8:1:2:bbbb:cccc::9]:6": "2001:db8:1:2::/64",
		"[2001:db8:1:3::1]:5000":        "2001:db8:1:3::/64",
		"[fe80::1%eth0]:80":             "fe80::/64",
		"[::1]:80":                      "::/64",
		"pipe":                          "pipe",
		"@":                             "@",
	} {
		if got := remoteIP(remote); got != want {
			t.Errorf("remoteIP(%q) = %q, want %q", remote, got, want)
		}
	}
}
