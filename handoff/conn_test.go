package handoff

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/luoinit/luoinit/wellknown"
	"golang.org/x/sys/unix"
)

func TestRoundTrip(t *testing.T) {
	for _, tr := range transports {
		for _, dir := range []Direction{DirectionPush, DirectionPull} {
			for _, n := range []int{1, 0, 64, 65, 150} {
				t.Run(fmt.Sprintf("%s/%v/%d_fds", tr.name, dir, n), func(t *testing.T) {
					defer noLeak(t)()
					w, l := tr.pair(t)
					defer w.Close()
					defer l.Close()
					for _, c := range []*Conn{w, l} {
						c.SetDeadline(time.Now().Add(10 * time.Second))
					}
					if err := w.SendHello(Hello{Direction: dir, Workload: "kv"}); err != nil {
						t.Fatal(err)
					}
					h, err := l.ReadHello()
					if err != nil {
						t.Fatal(err)
					}
					if want := (Hello{Version: ProtocolVersion, Direction: dir, Workload: "kv"}); h != want {
						t.Fatalf("ReadHello = %+v, want %+v", h, want)
					}
					sender, receiver := w, l
					if dir == DirectionPull {
						sender, receiver = l, w
					}
					files := memfds(t, n)
					defer closeAll(files)
					sent := make(chan error, 1)
					go func() {
						err := sender.SendFiles(files)
						if err == nil {
							err = sender.ReadAck()
						}
						sent <- err
					}()
					got, err := receiver.ReceiveFiles()
					if err != nil {
						t.Fatal(err)
					}
					defer closeAll(got)
					if got == nil {
						t.Error("ReceiveFiles returned a nil slice")
					}
					checkSame(t, files, got)
					if err := receiver.SendAck("", nil); err != nil {
						t.Fatal(err)
					}
					if err := <-sent; err != nil {
						t.Fatalf("sender: %v", err)
					}
				})
			}
		}
	}
}

// rawMsg is what a broken or hostile peer sends: bytes, with some copies
// of an fd attached.
type rawMsg struct {
	b   []byte
	fds int
}

func TestReceiveRejectsLies(t *testing.T) {
	manyBatches := func() []rawMsg {
		var ms []rawMsg
		for i := 0; i < MaxFiles/MaxBatch+1; i++ {
			ns := make([]string, MaxBatch)
			for j := range ns {
				ns[j] = fmt.Sprintf("b%d-%d", i, j)
			}
			ms = append(ms, rawMsg{msg(typeFDs, fdsPayload(ns...)), MaxBatch})
		}
		return ms
	}
	for _, tc := range []struct {
		desc  string
		msgs  []rawMsg
		close bool // the liar closes after sending
		want  string
		is    error
		fd    string // Error.FD
	}{
		{desc: "DONE count higher", msgs: []rawMsg{{msg(typeFDs, fdsPayload("a", "b")), 2}, {msg(typeDone, donePayload(3)), 0}},
			want: "DONE says 3 fds were sent, 2 arrived", is: ErrProtocol},
		{desc: "DONE count lower", msgs: []rawMsg{{msg(typeFDs, fdsPayload("a", "b")), 2}, {msg(typeDone, donePayload(1)), 0}},
			want: "DONE says 1 fds were sent, 2 arrived", is: ErrProtocol},
		{desc: "fewer fds than names", msgs: []rawMsg{{msg(typeFDs, fdsPayload("a", "b", "c")), 2}},
			want: "FDS names 3 fds but 2 arrived", is: ErrProtocol},
		{desc: "no fds for names", msgs: []rawMsg{{msg(typeFDs, fdsPayload("a")), 0}},
			want: "FDS names 1 fds but 0 arrived", is: ErrProtocol},
		{desc: "more fds than names", msgs: []rawMsg{{msg(typeFDs, fdsPayload("a")), 3}},
			want: "FDS names 1 fds but 3 arrived", is: ErrProtocol},
		{desc: "more fds than a batch holds", msgs: []rawMsg{{msg(typeFDs, fdsPayload("a")), 100}},
			want: "MSG_CTRUNC", is: ErrProtocol},
		{desc: "duplicate names in a batch", msgs: []rawMsg{{msg(typeFDs, fdsPayload("a", "b", "a")), 3}},
			want: `duplicate fd name "a"`, is: ErrProtocol},
		{desc: "duplicate names across batches", msgs: []rawMsg{{msg(typeFDs, fdsPayload("a", "b")), 2}, {msg(typeFDs, fdsPayload("c", "a")), 2}},
			want: `fd "a": protocol violation: fd name sent twice`, is: ErrProtocol, fd: "a"},
		{desc: "name too long", msgs: []rawMsg{{msg(typeFDs, append([]byte{1, 0, 255}, strings.Repeat("n", 256)...)), 1}},
			want: "1 bytes after its 1 names", is: ErrProtocol},
		{desc: "name with slash", msgs: []rawMsg{{msg(typeFDs, fdsPayload("a/b")), 1}},
			want: "contains '/'", is: ErrProtocol},
		{desc: "wrong magic", msgs: []rawMsg{{frame(0xdeadbeef, 1, uint16(typeFDs), 3, fdsPayload("a")), 1}},
			want: "bad magic 0xdeadbeef", is: ErrProtocol},
		{desc: "newer version", msgs: []rawMsg{{frame(Magic, 2, uint16(typeFDs), 3, fdsPayload("a")), 1}},
			want: "peer speaks version 2, this side speaks version 1", is: ErrVersion},
		{desc: "length disagrees", msgs: []rawMsg{{frame(Magic, 1, uint16(typeFDs), 9, fdsPayload("a")), 1}},
			want: "says 9 payload bytes, the message has 4", is: ErrProtocol},
		{desc: "message longer than the limit", msgs: []rawMsg{{msg(typeError, []byte(strings.Repeat("e", MaxPayload+1))), 1}},
			want: "MSG_TRUNC", is: ErrProtocol},
		{desc: "fds on DONE", msgs: []rawMsg{{msg(typeFDs, fdsPayload("a")), 1}, {msg(typeDone, donePayload(1)), 2}},
			want: "DONE message came with 2 fds", is: ErrProtocol},
		{desc: "HELLO instead of FDS", msgs: []rawMsg{{msg(typeFDs, fdsPayload("a")), 1}, {msg(typeHello, []byte{1, 0, 1, 2, 'k', 'v'}), 1}},
			want: "HELLO message came with 1 fds", is: ErrProtocol},
		{desc: "ACK instead of FDS", msgs: []rawMsg{{msg(typeFDs, fdsPayload("a")), 1}, {msg(typeAck, []byte{0, 0, 0, 0}), 0}},
			want: "got ACK, want FDS or DONE", is: ErrProtocol},
		{desc: "too many fds in a transfer", msgs: manyBatches(),
			want: fmt.Sprintf("more than %d fds in one transfer", MaxFiles), is: ErrProtocol},
		{desc: "ERROR in the middle", msgs: []rawMsg{{msg(typeFDs, fdsPayload("a")), 1}, {msg(typeError, []byte("disk on fire")), 0}},
			want: "peer sent ERROR: disk on fire"},
		{desc: "peer closes in the middle", msgs: []rawMsg{{msg(typeFDs, fdsPayload("a", "b")), 2}}, close: true,
			want: "connection closed by peer", is: io.ErrUnexpectedEOF},
		{desc: "empty message with fds", msgs: []rawMsg{{msg(typeFDs, fdsPayload("a")), 1}, {nil, 1}},
			want: "shorter than the 12-byte header", is: ErrProtocol},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			defer noLeak(t)()
			victim := memfd(t, "victim", "x")
			raw, c := rawPair(t)
			sent := make(chan error, 1)
			go func() {
				sent <- func() error {
					for i, m := range tc.msgs {
						var oob []byte
						if m.fds > 0 {
							oob = unix.UnixRights(repeat(int(victim.Fd()), m.fds)...)
						}
						if err := unix.Sendmsg(raw, m.b, oob, nil, unix.MSG_NOSIGNAL); err != nil {
							return fmt.Errorf("message %d: %w", i, err)
						}
					}
					if tc.close {
						unix.Shutdown(raw, unix.SHUT_WR)
					}
					return nil
				}()
			}()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			files, err := c.ReceiveFiles()
			if err == nil {
				closeAll(files)
				t.Fatalf("received %d files, want an error", len(files))
			}
			if files != nil {
				t.Errorf("got files %v with the error", files)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "receiving fds from peer") {
				t.Errorf("error %q does not name the step", err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q is not %v", err, tc.is)
			}
			var he *Error
			if !errors.As(err, &he) {
				t.Errorf("error %T is not an *Error", err)
			} else if he.FD != tc.fd {
				t.Errorf("Error.FD = %q, want %q", he.FD, tc.fd)
			}
			if errors.Is(err, ErrVersion) {
				// The newer peer is told why.
				b := make([]byte, HeaderSize+MaxPayload)
				n, _, _, _, rerr := unix.Recvmsg(raw, b, nil, unix.MSG_DONTWAIT)
				if rerr != nil {
					t.Fatalf("no answer to the newer version: %v", rerr)
				}
				m, derr := decodeMessage(b[:n])
				if derr != nil || m.typ != typeError || !strings.Contains(m.text, "version 2") {
					t.Errorf("answer to the newer version: %+v, %v; want ERROR naming version 2", m, derr)
				}
			}
			// Stop the sender: it may be blocked on a full socket.
			c.Close()
			<-sent
			unix.Close(raw)
			victim.Close()
		})
	}
}

func TestAck(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			defer noLeak(t)()
			a, b := tr.pair(t)
			defer a.Close()
			defer b.Close()

			if err := b.SendAck("", nil); err != nil {
				t.Fatal(err)
			}
			if err := a.ReadAck(); err != nil {
				t.Errorf("ACK ok: ReadAck = %v", err)
			}

			if err := b.SendAck("heap", errors.New("preserve: device or resource busy")); err != nil {
				t.Fatal(err)
			}
			err := a.ReadAck()
			ae, ok := err.(*AckError)
			if !ok {
				t.Fatalf("ReadAck = %v (%T), want *AckError", err, err)
			}
			if *ae != (AckError{FD: "heap", Message: "preserve: device or resource busy"}) {
				t.Errorf("AckError = %+v", *ae)
			}
			if want := `peer rejected fd "heap": preserve: device or resource busy`; ae.Error() != want {
				t.Errorf("AckError text %q, want %q", ae, want)
			}
			if FDOf(err) != "heap" {
				t.Errorf("FDOf = %q", FDOf(err))
			}

			if err := b.SendAck("", errors.New(strings.Repeat("long ", 2000))); err != nil {
				t.Fatal(err)
			}
			if err := a.ReadAck(); !errors.As(err, &ae) || ae.FD != "" || len(ae.Message) != MaxTextLen {
				t.Errorf("long ACK error: %v", err)
			}

			if err := b.SendAck("bad/name", errors.New("x")); err == nil || !strings.Contains(err.Error(), "contains '/'") {
				t.Errorf("SendAck with a bad fd name: %v", err)
			}

			if err := b.SendError("unknown workload"); err != nil {
				t.Fatal(err)
			}
			err = a.ReadAck()
			var pe *PeerError
			if !errors.As(err, &pe) || pe.Message != "unknown workload" {
				t.Errorf("ERROR: ReadAck = %v, want a *PeerError", err)
			}
			if _, ok := err.(*Error); !ok {
				t.Errorf("ERROR: ReadAck returned %T, want *Error", err)
			}

			if err := b.SendError("go away"); err != nil {
				t.Fatal(err)
			}
			if _, err := a.ReadHello(); !errors.As(err, &pe) || pe.Message != "go away" {
				t.Errorf("ReadHello after ERROR = %v", err)
			}

			// A message of the wrong type where ACK is due.
			if err := b.SendFiles(nil); err != nil {
				t.Fatal(err)
			}
			if err := a.ReadAck(); !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "got DONE, want ACK") {
				t.Errorf("DONE for ACK: %v", err)
			}
		})
	}
}

func TestPeerInProcess(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			a, b := tr.pair(t)
			defer a.Close()
			defer b.Close()
			want := Cred{PID: os.Getpid(), UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
			for _, c := range []*Conn{a, b} {
				got, err := c.Peer()
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("Peer = %+v, want %+v", got, want)
				}
			}
		})
	}
}

func TestSendFilesChecks(t *testing.T) {
	a, b := transports[0].pair(t)
	defer a.Close()
	defer b.Close()
	f := memfd(t, "f", "x")
	closed := memfd(t, "closed", "x")
	closed.Close()
	defer f.Close()
	tooMany := make([]File, MaxFiles+1)
	for _, tc := range []struct {
		desc  string
		files []File
		want  string
	}{
		{"duplicate", []File{{"a", f}, {"a", f}}, `fd "a": protocol violation: duplicate fd name`},
		{"bad name", []File{{"a/b", f}}, "contains '/'"},
		{"empty name", []File{{"", f}}, `fd name "" is empty`},
		{"nil file", []File{{"a", nil}}, `fd "a": no *os.File`},
		{"closed file", []File{{"a", closed}}, `fd "a": `},
		{"too many", tooMany, fmt.Sprintf("%d fds in one transfer", MaxFiles+1)},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err := a.SendFiles(tc.files)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("SendFiles = %v, want an error with %q", err, tc.want)
			}
		})
	}
	// Nothing went out: the peer sees no message.
	b.SetDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := b.ReceiveFiles(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("after rejected sends, the peer got %v, want a timeout", err)
	}
}

func TestHelloChecks(t *testing.T) {
	a, b := transports[0].pair(t)
	defer a.Close()
	defer b.Close()
	for _, tc := range []struct {
		h    Hello
		want string
	}{
		{Hello{Version: 2, Direction: DirectionPush, Workload: "kv"}, "unsupported protocol version 2"},
		{Hello{Direction: 7, Workload: "kv"}, "direction(7)"},
		{Hello{Direction: DirectionPull, Workload: ""}, `workload name "" is empty`},
		{Hello{Direction: DirectionPull, Workload: strings.Repeat("w", 64)}, "64 bytes long (at most 55, "},
	} {
		if err := a.SendHello(tc.h); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SendHello(%+v) = %v, want an error with %q", tc.h, err, tc.want)
		}
	}
	if err := a.SendFiles(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReadHello(); !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "waiting for HELLO from peer: protocol violation: got DONE, want HELLO") {
		t.Errorf("ReadHello of DONE: %v", err)
	}
}

func TestTimeouts(t *testing.T) {
	const d = 200 * time.Millisecond
	check := func(t *testing.T, err error, start time.Time, want string) {
		t.Helper()
		if el := time.Since(start); el > d+time.Second {
			t.Errorf("returned after %v, deadline was %v", el, d)
		}
		if err == nil {
			t.Fatal("no error")
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("error %q is not os.ErrDeadlineExceeded", err)
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	pair := func(t *testing.T) (w, l *Conn) {
		w, l = transports[0].pair(t)
		if err := w.SendHello(Hello{Direction: DirectionPull, Workload: "kv"}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.ReadHello(); err != nil {
			t.Fatal(err)
		}
		return w, l
	}

	t.Run("ReadAck", func(t *testing.T) {
		w, l := pair(t)
		defer w.Close()
		defer l.Close()
		files := memfds(t, 2)
		defer closeAll(files)
		l.SetDeadline(time.Now().Add(d))
		if err := l.SendFiles(files); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err := l.ReadAck()
		check(t, err, start, `handoff: waiting for ACK from workload "kv": timeout after 200ms`)
	})
	t.Run("ReceiveFiles", func(t *testing.T) {
		w, l := pair(t)
		defer w.Close()
		defer l.Close()
		start := time.Now()
		w.SetDeadline(start.Add(d))
		_, err := w.ReceiveFiles()
		check(t, err, start, `handoff: workload "kv": receiving fds from luoinit: timeout after 200ms`)
	})
	t.Run("ReadHello", func(t *testing.T) {
		a, b := transports[1].pair(t)
		defer a.Close()
		defer b.Close()
		start := time.Now()
		b.SetDeadline(start.Add(d))
		_, err := b.ReadHello()
		check(t, err, start, "waiting for HELLO from peer: timeout after 200ms")
	})
	t.Run("SendFiles to a full socket", func(t *testing.T) {
		w, l := pair(t)
		defer w.Close()
		defer l.Close()
		f := memfd(t, "big", "x")
		defer f.Close()
		// Fill the socket: the peer never reads.
		start := time.Now()
		l.SetDeadline(start.Add(d))
		var err error
		for i := 0; i < 100000 && err == nil; i++ {
			err = l.SendFiles([]File{{Name: "big", File: f}})
		}
		check(t, err, start, `sending fds 1 to 1 of 1 to workload "kv": timeout after 200ms`)
	})
	t.Run("Accept", func(t *testing.T) {
		l, err := Listen(filepath.Join(t.TempDir(), "s"))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		start := time.Now()
		l.SetDeadline(start.Add(d))
		_, err = l.Accept()
		check(t, err, start, "waiting for a connection on "+l.Path()+": timeout after 200ms")
	})
	t.Run("Push to a silent luoinit", func(t *testing.T) {
		l, err := Listen(filepath.Join(t.TempDir(), "s"))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		accepted := make(chan *Conn, 1)
		go func() {
			c, _ := l.Accept()
			accepted <- c
		}()
		files := memfds(t, 3)
		defer closeAll(files)
		start := time.Now()
		err = Push(l.Path(), "kv", files, d)
		check(t, err, start, `handoff: workload "kv": waiting for ACK from luoinit: timeout after 200ms`)
		if c := <-accepted; c != nil {
			c.Close()
		}
	})
}

func TestListen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "h.sock")

	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK || st.Mode&0o777 != 0o600 {
		t.Errorf("socket mode %o, want a socket with 0600", st.Mode)
	}
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "is in use") {
		t.Errorf("Listen on a live socket: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file after Close: %v", err)
	}

	// A socket file nobody listens on is stale and replaced.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	l, err = Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	l.Close()

	// Anything else is left alone.
	regular := filepath.Join(dir, "file")
	os.WriteFile(regular, []byte("keep"), 0o644)
	if _, err := Listen(regular); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("Listen on a regular file: %v", err)
	}
	if b, _ := os.ReadFile(regular); string(b) != "keep" {
		t.Error("Listen touched a regular file")
	}
	if _, err := Listen(filepath.Join(dir, strings.Repeat("x", 120))); err == nil || !strings.Contains(err.Error(), "at most 107") {
		t.Errorf("Listen on a long path: %v", err)
	}

	// Close leaves a socket file that replaced ours.
	l, err = Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	os.WriteFile(path, []byte("other"), 0o600)
	l.Close()
	if b, _ := os.ReadFile(path); string(b) != "other" {
		t.Error("Close removed a file that was not its socket")
	}
}

func TestDialErrors(t *testing.T) {
	_, err := Dial(filepath.Join(t.TempDir(), "none"))
	if err == nil || !strings.Contains(err.Error(), "connecting to") || !errors.Is(err, unix.ENOENT) {
		t.Errorf("Dial of a missing socket: %v", err)
	}
}

func TestNewConnChecks(t *testing.T) {
	defer noLeak(t)()
	f := memfd(t, "m", "")
	defer f.Close()
	if _, err := NewConn(f); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("NewConn(memfd) = %v", err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := os.NewFile(uintptr(fds[0]), "stream")
	defer s.Close()
	defer unix.Close(fds[1])
	if _, err := NewConn(s); err == nil || !strings.Contains(err.Error(), "not SOCK_SEQPACKET") {
		t.Errorf("NewConn(SOCK_STREAM) = %v", err)
	}
}

func TestSocketpairChildEnd(t *testing.T) {
	c, f, err := Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	defer f.Close()
	// Close-on-exec in the parent, so that no other child inherits it;
	// a child it is given to gets it without (ExtraFiles dup2s it).
	if !cloexec(t, f) {
		t.Error("child end lacks FD_CLOEXEC: a child started by another goroutine would inherit it")
	}
	var kept int
	c.rc.Control(func(fd uintptr) { kept = int(fd) })
	flags, err := unix.FcntlInt(uintptr(kept), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("kept end: flags %d, %v; want FD_CLOEXEC", flags, err)
	}
}

// On a socket pair SO_PEERCRED names the creator (this process); with
// PassCred, Sender names the process that really sent the message.
func TestPassCredNamesTheSender(t *testing.T) {
	c, child, err := Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.PassCred(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=receive", wellknown.EnvHandoffFD+"=3")
	cmd.ExtraFiles = []*os.File{child}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child.Close()
	defer cmd.Wait()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, ok := c.Sender(); ok {
		t.Fatal("Sender set before anything was received")
	}
	if _, err := c.ReadHello(); err != nil {
		t.Fatal(err)
	}
	peer, err := c.Peer()
	if err != nil {
		t.Fatal(err)
	}
	sender, ok := c.Sender()
	if !ok || sender.PID != cmd.Process.Pid {
		t.Fatalf("Sender = %+v, %v; want the child's pid %d", sender, ok, cmd.Process.Pid)
	}
	if peer.PID != os.Getpid() {
		t.Fatalf("Peer pid %d; on a socket pair it is the creator, %d", peer.PID, os.Getpid())
	}
	if err := c.SendFiles(nil); err != nil {
		t.Fatal(err)
	}
	if err := c.ReadAck(); err != nil {
		t.Fatal(err)
	}
}

// The socket file appears only once it is listening (bound under a
// temporary name, renamed into place), so a client that sees the path
// never gets ECONNREFUSED; no temporary name is left behind.
func TestListenAppearsListening(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "prepare.sock")
	seen := make(chan error, 1)
	go func() {
		for i := 0; i < 20000; i++ {
			if _, err := os.Stat(path); err == nil {
				c, err := Dial(path)
				if err == nil {
					c.Close()
				}
				seen <- err
				return
			}
			time.Sleep(50 * time.Microsecond)
		}
		seen <- errors.New("the socket never appeared")
	}()
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
	}()
	if err := <-seen; err != nil {
		t.Fatalf("a client that saw the socket could not connect: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "prepare.sock" {
		t.Fatalf("directory holds %v, want only prepare.sock", ents)
	}
}
