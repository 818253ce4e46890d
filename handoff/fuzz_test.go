package handoff

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// FuzzDecodeMessage: decoding never panics, every error is a protocol or
// version error, and a decoded message encodes back to the same bytes,
// which decode to the same message.
func FuzzDecodeMessage(f *testing.F) {
	for _, m := range seedMessages {
		b, err := encodeMessage(&m)
		if err != nil {
			f.Fatal(err)
		}
		// Seeds of kilobytes make every mutation slow to minimize; the
		// unit tests cover the largest messages.
		if len(b) <= 1024 {
			f.Add(b)
		}
	}
	f.Add(frame(Magic, 2, uint16(typeHello), 6, []byte{2, 0, 1, 2, 'k', 'v'}))
	f.Add(frame(0, 1, uint16(typeDone), 4, donePayload(1)))
	f.Add(msg(typeFDs, fdsPayload("a", "a")))
	f.Add(msg(typeAck, []byte{1, 1, 1, 0, 'a'}))
	f.Add([]byte("LUOH"))
	f.Add([]byte{})
	f.Add(msg(typeHello, hello(1, 1, "a/b")))
	f.Add(msg(typeHello, hello(1, 2, "..")))
	f.Add(msg(typeFDs, fdsPayload("a:b", "tab\there")))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		if err != nil {
			if !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrVersion) {
				t.Fatalf("error %q is neither ErrProtocol nor ErrVersion", err)
			}
			return
		}
		b2, err := encodeMessage(&m)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", m, err)
		}
		if !bytes.Equal(b, b2) {
			t.Fatalf("decoded %+v encodes to %x, not the %x it came from", m, b2, b)
		}
		m2, err := decodeMessage(b2)
		if err != nil {
			t.Fatalf("re-encoded %x does not decode: %v", b2, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("decoded %+v, re-decoded %+v", m, m2)
		}
	})
}

var (
	victimOnce sync.Once
	victimFD   int
)

// chunks cuts fuzz input into messages: each is a byte of fd count (taken
// modulo 101, so that some exceed a batch), a little-endian uint16 length
// and that many bytes.
func chunks(data []byte) []rawMsg {
	var ms []rawMsg
	for len(data) >= 3 && len(ms) < 16 {
		nfds := int(data[0]) % 101
		n := int(binary.LittleEndian.Uint16(data[1:3]))
		data = data[3:]
		n = min(n, len(data))
		ms = append(ms, rawMsg{b: data[:n], fds: nfds})
		data = data[n:]
	}
	return ms
}

func chunk(m rawMsg) []byte {
	b := []byte{byte(m.fds)}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(m.b)))
	return append(b, m.b...)
}

// FuzzReceiveFiles sends whatever the input says, fds included, and
// checks that ReceiveFiles either gives back valid files or fails, and
// that no fd is left open either way.
func FuzzReceiveFiles(f *testing.F) {
	seeds := [][]rawMsg{
		{{msg(typeFDs, fdsPayload("a", "b")), 2}, {msg(typeDone, donePayload(2)), 0}},
		{{msg(typeDone, donePayload(0)), 0}},
		{{msg(typeFDs, fdsPayload("a")), 1}, {msg(typeFDs, fdsPayload("b")), 1}, {msg(typeDone, donePayload(2)), 0}},
		{{msg(typeFDs, fdsPayload("a", "b")), 1}},
		{{msg(typeFDs, fdsPayload("a")), 100}},
		{{msg(typeFDs, fdsPayload("a")), 1}, {msg(typeDone, donePayload(1)), 1}},
		{{msg(typeFDs, fdsPayload("a")), 1}, {msg(typeFDs, fdsPayload("a")), 1}},
		{{msg(typeFDs, fdsPayload("a")), 1}, {msg(typeError, []byte("no")), 0}},
		{{frame(Magic, 2, uint16(typeFDs), 4, fdsPayload("a")), 1}},
		{{nil, 0}},
		{{msg(typeFDs, fdsPayload("a")), 1}, {nil, 0}, {msg(typeDone, donePayload(1)), 0}},
		{{msg(typeFDs, fdsPayload("a/b", ".")), 2}, {msg(typeDone, donePayload(2)), 0}},
	}
	for _, s := range seeds {
		var b []byte
		for _, m := range s {
			b = append(b, chunk(m)...)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		victimOnce.Do(func() {
			fd, err := unix.MemfdCreate("victim", unix.MFD_CLOEXEC)
			if err != nil {
				panic(err)
			}
			victimFD = fd
		})
		before := countFDs(t)
		pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		raw := pair[0]
		for _, m := range chunks(data) {
			var oob []byte
			if m.fds > 0 {
				oob = unix.UnixRights(repeat(victimFD, m.fds)...)
			}
			// A full socket or an oversized message just drops the message.
			unix.Sendmsg(raw, m.b, oob, nil, unix.MSG_NOSIGNAL)
		}
		unix.Shutdown(raw, unix.SHUT_WR)
		sf := os.NewFile(uintptr(pair[1]), "fuzz")
		c, err := NewConn(sf)
		sf.Close()
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		files, err := c.ReceiveFiles()
		if err == nil {
			seen := map[string]bool{}
			for _, f := range files {
				if ValidateName(f.Name) != nil || seen[f.Name] {
					t.Errorf("received bad or repeated name %q", f.Name)
				}
				seen[f.Name] = true
				if !cloexec(t, f.File) {
					t.Errorf("%q without FD_CLOEXEC", f.Name)
				}
			}
			closeAll(files)
		} else if files != nil {
			t.Errorf("files with error %v", err)
		}
		c.Close()
		unix.Close(raw)
		if after := countFDs(t); after != before {
			t.Fatalf("fd leak: %d open before, %d after (error %v)", before, after, err)
		}
	})
}
