package protocol

import (
	"errors"
	"strings"
)

// MaxChannelBytes is the longest channel name.
const MaxChannelBytes = 255

// ValidateChannel checks a channel name against the rules: 1 to 255 bytes of
// A-Z a-z 0-9 _ - . : @ / =.
func ValidateChannel(name string) error {
	if name == "" {
		return errors.New("channel name is empty")
	}
	if len(name) > MaxChannelBytes {
		return errors.New("channel name is longer than 255 bytes")
	}
	for i := 0; i < len(name); i++ {
		if !channelByte[name[i]] {
			return errors.New("channel name may only hold A-Z a-z 0-9 _ - . : @ / =")
		}
	}
	return nil
}

// Namespace returns the part of a channel name before its first ':', or ""
// when it has none.
func Namespace(channel string) string {
	ns, _, found := strings.Cut(channel, ":")
	if !found {
		return ""
	}
	return ns
}

var channelByte = func() (t [256]bool) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "_-.:@/=" {
		t[c] = true
	}
	return t
}()
