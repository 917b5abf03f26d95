package broker

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

// FuzzReadFrame feeds arbitrary bytes to the log's record reader: it must
// never panic, must stop at the first frame that is cut short or fails its
// checksum, and every record it accepts must survive encoding and decoding
// again unchanged.
func FuzzReadFrame(f *testing.F) {
	var seed []byte
	seed = (&walRecord{kind: recMeta, boot: "b", mode: FsyncAlways}).appendFrame(seed)
	seed = (&walRecord{kind: recPublish, channel: "chat:a", epoch: "abcdEFGH", offset: 7, at: 12345, key: "k", data: []byte(`{"a":1}`)}).appendFrame(seed)
	seed = (&walRecord{kind: recKey, channel: "c", epoch: "e", offset: 1, at: -1, key: "k2"}).appendFrame(seed)
	seed = (&walRecord{kind: recPosition, channel: "c", epoch: "e", offset: 0, at: 9}).appendFrame(seed)
	f.Add(seed)
	f.Add(seed[:len(seed)-3])
	flipped := bytes.Clone(seed)
	flipped[20] ^= 1
	f.Add(flipped)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		read := 0
		for {
			p, err := readFrame(r)
			if err == io.EOF {
				if read != len(b) {
					t.Fatalf("clean end after %d of %d bytes", read, len(b))
				}
				return
			}
			if err != nil {
				if !errors.Is(err, errTorn) {
					t.Fatalf("error %v, want errTorn", err)
				}
				return
			}
			rec, err := decodeRecord(p)
			if err != nil {
				return
			}
			again, err := readFrame(bufio.NewReader(bytes.NewReader(rec.appendFrame(nil))))
			if err != nil {
				t.Fatalf("record %+v does not read back: %v", rec, err)
			}
			if rec2, err := decodeRecord(again); err != nil || !reflect.DeepEqual(rec, rec2) {
				t.Fatalf("record %+v decodes back as %+v, %v", rec, rec2, err)
			}
			read += frameHeader + len(p)
		}
	})
}
