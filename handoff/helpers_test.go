package handoff

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/luoinit/luoinit/wellknown"
	"golang.org/x/sys/unix"
)

var warmOnce sync.Once

// warmUp makes the runtime open what it opens once (the network poller),
// so that counting fds before and after a test compares like with like.
func warmUp() {
	warmOnce.Do(func() {
		c, f, err := Socketpair()
		if err != nil {
			panic(err)
		}
		c.SetDeadline(time.Now().Add(time.Second))
		c.Close()
		f.Close()
	})
}

// countFDs is the number of open fds of this process.
func countFDs(t testing.TB) int {
	t.Helper()
	warmUp()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// noLeak checks, when the returned func runs, that as many fds are open as
// when noLeak was called.
func noLeak(t testing.TB) func() {
	t.Helper()
	before := countFDs(t)
	return func() {
		t.Helper()
		// A received fd handed to os.NewFile is closed at once by Close;
		// nothing here waits for a finalizer.
		if after := countFDs(t); after != before {
			t.Errorf("fd leak: %d fds open before, %d after", before, after)
		}
	}
}

// memfd makes a memfd holding content.
func memfd(t testing.TB, name, content string) *os.File {
	t.Helper()
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatalf("memfd_create: %v", err)
	}
	f := os.NewFile(uintptr(fd), name)
	if _, err := f.WriteAt([]byte(content), 0); err != nil {
		t.Fatal(err)
	}
	return f
}

// memfds makes n named memfds; the caller closes them.
func memfds(t testing.TB, n int) []File {
	t.Helper()
	files := make([]File, n)
	for i := range files {
		name := fmt.Sprintf("fd-%03d", i)
		files[i] = File{Name: name, File: memfd(t, name, "content of "+name)}
	}
	return files
}

func fileID(t testing.TB, f *os.File) [2]uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatalf("fstat %s: %v", f.Name(), err)
	}
	return [2]uint64{uint64(st.Dev), st.Ino}
}

func cloexec(t testing.TB, f *os.File) bool {
	t.Helper()
	flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0)
	if err != nil {
		t.Fatalf("fcntl %s: %v", f.Name(), err)
	}
	return flags&unix.FD_CLOEXEC != 0
}

// checkSame checks that got are the files of want, by name and order, the
// same open files (dev/ino, and a write through one is read through the
// other), with close-on-exec.
func checkSame(t testing.TB, want, got []File) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d files, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Name != want[i].Name {
			t.Errorf("file %d: name %q, want %q", i, got[i].Name, want[i].Name)
			continue
		}
		if a, b := fileID(t, want[i].File), fileID(t, got[i].File); a != b {
			t.Errorf("file %q: dev/ino %v, want %v", got[i].Name, b, a)
		}
		if !cloexec(t, got[i].File) {
			t.Errorf("file %q: received fd without FD_CLOEXEC", got[i].Name)
		}
		msg := []byte("written through the received fd " + got[i].Name)
		if _, err := got[i].File.WriteAt(msg, 100); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msg))
		if _, err := want[i].File.ReadAt(buf, 100); err != nil {
			t.Fatal(err)
		}
		if string(buf) != string(msg) {
			t.Errorf("file %q: read %q through the sent fd, want %q", got[i].Name, buf, msg)
		}
	}
}

func closeAll(files []File) {
	for _, f := range files {
		f.File.Close()
	}
}

// transports are the ways to get a connected pair of Conns: a is the
// workload's end, b luoinit's.
var transports = []struct {
	name string
	pair func(t *testing.T) (a, b *Conn)
}{
	{"socketpair", func(t *testing.T) (*Conn, *Conn) {
		b, f, err := Socketpair()
		if err != nil {
			t.Fatal(err)
		}
		a, err := NewConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	}},
	{"listen-dial", func(t *testing.T) (*Conn, *Conn) {
		l, err := Listen(filepath.Join(t.TempDir(), "h.sock"))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		a, err := Dial(l.Path())
		if err != nil {
			t.Fatal(err)
		}
		b, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	}},
}

// rawPair is a socket pair with one raw end (for a peer that breaks the
// protocol) and one Conn.
func rawPair(t testing.TB) (raw int, c *Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fds[1]), "conn end")
	c, err = NewConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	return fds[0], c
}

// rawReceiver is a raw socket whose other end this process's Receive
// takes, as a workload would, through LUOINIT_HANDOFF_FD (Receive closes
// that end). The caller closes the raw end.
func rawReceiver(t *testing.T) (raw int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(wellknown.EnvHandoffFD, strconv.Itoa(fds[1]))
	return fds[0]
}

// frame builds a message with any header fields.
func frame(magic uint32, version, typ uint16, length int, payload []byte) []byte {
	b := make([]byte, HeaderSize, HeaderSize+len(payload))
	binary.LittleEndian.PutUint32(b[0:], magic)
	binary.LittleEndian.PutUint16(b[4:], version)
	binary.LittleEndian.PutUint16(b[6:], typ)
	binary.LittleEndian.PutUint32(b[8:], uint32(length))
	return append(b, payload...)
}

// msg builds a well-framed message of protocol version 1.
func msg(typ msgType, payload []byte) []byte {
	return frame(Magic, ProtocolVersion, uint16(typ), len(payload), payload)
}

// fdsPayload is an FDS payload with names, not checked.
func fdsPayload(names ...string) []byte {
	b := binary.LittleEndian.AppendUint16(nil, uint16(len(names)))
	for _, n := range names {
		b = append(b, byte(len(n)))
		b = append(b, n...)
	}
	return b
}

// hello is a HELLO payload, not checked.
func hello(version uint16, dir byte, w string) []byte {
	p := []byte{byte(version), byte(version >> 8), dir, byte(len(w))}
	return append(p, w...)
}

func donePayload(n uint32) []byte { return binary.LittleEndian.AppendUint32(nil, n) }

// repeat is fd repeated n times: each arrives as a new fd.
func repeat(fd, n int) []int {
	fds := make([]int, n)
	for i := range fds {
		fds[i] = fd
	}
	return fds
}
