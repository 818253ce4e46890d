package handoff

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/luoinit/luoinit/wellknown"
	"golang.org/x/sys/unix"
)

// A test that runs this binary again as a workload sets helperEnv to what
// the workload does.
const helperEnv = "HANDOFF_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "push":
		os.Exit(helperPush())
	case "receive":
		os.Exit(helperReceive())
	default:
		fmt.Fprintf(os.Stderr, "unknown %s\n", helperEnv)
		os.Exit(2)
	}
}

// helperPush pushes two memfds to the socket of HANDOFF_TEST_SOCKET.
func helperPush() int {
	var files []File
	for _, name := range []string{"heap", "index"} {
		fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		f := os.NewFile(uintptr(fd), name)
		f.WriteString("pushed " + name)
		files = append(files, File{Name: name, File: f})
	}
	if err := Push(os.Getenv("HANDOFF_TEST_SOCKET"), "kv-child", files, 10*time.Second); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// helperReceive pulls its files as wellknown.EnvHandoffFD says, checks them and writes
// into each.
func helperReceive() int {
	files, err := Receive("kv-child", 10*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if v, ok := os.LookupEnv(wellknown.EnvHandoffFD); ok {
		fmt.Fprintf(os.Stderr, "%s=%s still set after Receive\n", wellknown.EnvHandoffFD, v)
		return 1
	}
	for _, f := range files {
		buf := make([]byte, 64)
		n, _ := f.File.ReadAt(buf, 0)
		if want := "kept " + f.Name; string(buf[:n]) != want {
			fmt.Fprintf(os.Stderr, "%s holds %q, want %q\n", f.Name, buf[:n], want)
			return 1
		}
		if flags, err := unix.FcntlInt(f.File.Fd(), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
			fmt.Fprintf(os.Stderr, "%s: no FD_CLOEXEC (%d, %v)\n", f.Name, flags, err)
			return 1
		}
		if _, err := f.File.WriteAt([]byte("child "+strconv.Itoa(os.Getpid())), 100); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		f.File.Close()
	}
	return 0
}

func helper(t *testing.T, mode string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, helperEnv+"="+mode)...)
	cmd.Stderr = os.Stderr
	return cmd
}

func TestPushFromAnotherProcess(t *testing.T) {
	l, err := Listen(filepath.Join(t.TempDir(), "prepare.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cmd := helper(t, "push", "HANDOFF_TEST_SOCKET="+l.Path())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l.SetDeadline(time.Now().Add(10 * time.Second))
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	cred, err := c.Peer()
	if err != nil {
		t.Fatal(err)
	}
	if want := (Cred{PID: cmd.Process.Pid, UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}); cred != want {
		t.Errorf("Peer = %+v, want %+v", cred, want)
	}
	h, err := c.ReadHello()
	if err != nil {
		t.Fatal(err)
	}
	if h != (Hello{Version: 1, Direction: DirectionPush, Workload: "kv-child"}) {
		t.Errorf("HELLO %+v", h)
	}
	files, err := c.ReceiveFiles()
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(files)
	var got []string
	for _, f := range files {
		buf := make([]byte, 64)
		n, _ := f.File.ReadAt(buf, 0)
		got = append(got, f.Name+"="+string(buf[:n]))
	}
	if want := "heap=pushed heap index=pushed index"; strings.Join(got, " ") != want {
		t.Errorf("received %q, want %q", got, want)
	}
	if err := c.SendAck("", nil); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("pushing workload: %v", err)
	}
}

func TestReceiveInAnotherProcess(t *testing.T) {
	defer noLeak(t)()
	c, child, err := Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cmd := helper(t, "receive", wellknown.EnvHandoffFD+"=3")
	cmd.ExtraFiles = []*os.File{child}
	err = cmd.Start()
	child.Close()
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	h, err := c.ReadHello()
	if err != nil {
		t.Fatal(err)
	}
	if h != (Hello{Version: 1, Direction: DirectionPull, Workload: "kv-child"}) {
		t.Errorf("HELLO %+v", h)
	}
	if cred, err := c.Peer(); err != nil || cred.PID != os.Getpid() {
		// A socketpair's credentials are those of its maker.
		t.Errorf("Peer of a socketpair = %+v, %v; want this process", cred, err)
	}
	files := []File{
		{"heap", memfd(t, "heap", "kept heap")},
		{"index", memfd(t, "index", "kept index")},
	}
	defer closeAll(files)
	if err := c.SendFiles(files); err != nil {
		t.Fatal(err)
	}
	if err := c.ReadAck(); err != nil {
		t.Fatalf("ACK: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("receiving workload: %v", err)
	}
	for _, f := range files {
		buf := make([]byte, 32)
		n, _ := f.File.ReadAt(buf, 100)
		if want := "child " + strconv.Itoa(cmd.Process.Pid); string(buf[:n]) != want {
			t.Errorf("%s: the child wrote %q, want %q", f.Name, buf[:n], want)
		}
	}
}

// initSide plays luoinit for a pull: it checks HELLO, sends files and
// returns the ACK.
func initSide(c *Conn, files []File) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	h, err := c.ReadHello()
	if err != nil {
		return err
	}
	if h != (Hello{Version: 1, Direction: DirectionPull, Workload: "kv"}) {
		return fmt.Errorf("HELLO %+v", h)
	}
	if err := c.SendFiles(files); err != nil {
		return err
	}
	return c.ReadAck()
}

func TestReceive(t *testing.T) {
	for _, tc := range []struct {
		desc string
		// setup prepares the environment and returns luoinit's end, which
		// may only be there once Receive has connected, and a last check.
		setup func(t *testing.T) (initConn func() *Conn, after func())
	}{
		{"wellknown.EnvHandoffFD", func(t *testing.T) (func() *Conn, func()) {
			c, child, err := Socketpair()
			if err != nil {
				t.Fatal(err)
			}
			// Receive closes the fd it is given: give it a copy.
			fd, err := unix.Dup(int(child.Fd()))
			if err != nil {
				t.Fatal(err)
			}
			child.Close()
			t.Setenv(wellknown.EnvHandoffFD, strconv.Itoa(fd))
			t.Setenv(wellknown.EnvHandoffSocket, "/nonexistent") // wellknown.EnvHandoffFD wins
			return func() *Conn { return c }, func() {
				// That Receive closed the inherited fd, noLeak checks.
				if _, ok := os.LookupEnv(wellknown.EnvHandoffFD); ok {
					t.Errorf("%s still set after Receive", wellknown.EnvHandoffFD)
				}
			}
		}},
		{"wellknown.EnvHandoffSocket", func(t *testing.T) (func() *Conn, func()) {
			l, err := Listen(filepath.Join(t.TempDir(), "init.sock"))
			if err != nil {
				t.Fatal(err)
			}
			t.Setenv(wellknown.EnvHandoffFD, "")
			t.Setenv(wellknown.EnvHandoffSocket, l.Path())
			return func() *Conn {
					defer l.Close()
					l.SetDeadline(time.Now().Add(10 * time.Second))
					c, err := l.Accept()
					if err != nil {
						return nil
					}
					return c
				}, func() {
					if os.Getenv(wellknown.EnvHandoffSocket) == "" {
						t.Errorf("%s unset by Receive", wellknown.EnvHandoffSocket)
					}
				}
		}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			defer noLeak(t)()
			files := memfds(t, 70)
			defer closeAll(files)
			initConn, after := tc.setup(t)
			done := make(chan error, 1)
			go func() {
				c := initConn()
				if c == nil {
					done <- errors.New("no connection")
					return
				}
				err := initSide(c, files)
				c.Close()
				done <- err
			}()
			got, err := Receive("kv", 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer closeAll(got)
			checkSame(t, files, got)
			if err := <-done; err != nil {
				t.Errorf("init side: %v", err)
			}
			after()
		})
	}
}

func TestReceiveErrors(t *testing.T) {
	regular := memfd(t, "not a socket", "")
	defer regular.Close()
	for _, tc := range []struct {
		desc, fd, socket string
		want             string
		is               error
	}{
		{desc: "nothing set", want: `workload "kv": finding the handoff socket: no handoff`, is: ErrNoHandoff},
		{desc: "fd not a number", fd: "three", want: "using LUOINIT_HANDOFF_FD=three: not an fd number"},
		{desc: "fd negative", fd: "-1", want: "not an fd number"},
		{desc: "fd not open", fd: "999", want: "getsockopt(fd 999, SO_DOMAIN): bad file descriptor", is: unix.EBADF},
		{desc: "fd not a socket", fd: strconv.Itoa(int(regular.Fd())), want: "is not a socket", is: unix.ENOTSOCK},
		{desc: "socket missing", socket: "/nonexistent/x.sock", want: `workload "kv": connecting to /nonexistent/x.sock`, is: unix.ENOENT},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Setenv(wellknown.EnvHandoffFD, tc.fd)
			t.Setenv(wellknown.EnvHandoffSocket, tc.socket)
			if tc.fd == "" {
				os.Unsetenv(wellknown.EnvHandoffFD)
			}
			if tc.socket == "" {
				os.Unsetenv(wellknown.EnvHandoffSocket)
			}
			files, err := Receive("kv", time.Second)
			if err == nil {
				closeAll(files)
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q is not %v", err, tc.is)
			}
		})
	}
	// The fd that was not a socket is left open.
	if _, err := unix.FcntlInt(regular.Fd(), unix.F_GETFD, 0); err != nil {
		t.Errorf("Receive closed an fd that was not its socket: %v", err)
	}
}

// TestReceiveAnswersLies: a bad transfer from luoinit is refused with an
// ACK error that names the fd, and nothing received stays open.
func TestReceiveAnswersLies(t *testing.T) {
	defer noLeak(t)()
	raw := rawReceiver(t)
	defer unix.Close(raw)
	victim := memfd(t, "victim", "")
	defer victim.Close()
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for _, m := range []rawMsg{{msg(typeFDs, fdsPayload("a", "b")), 2}, {msg(typeFDs, fdsPayload("b")), 1}} {
			unix.Sendmsg(raw, m.b, unix.UnixRights(repeat(int(victim.Fd()), m.fds)...), nil, unix.MSG_NOSIGNAL)
		}
	}()
	files, err := Receive("kv", 5*time.Second)
	<-sent
	if err == nil {
		closeAll(files)
		t.Fatal("no error")
	}
	if want := `handoff: workload "kv": receiving fds from luoinit, fd "b": protocol violation: fd name sent twice in one transfer`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	b := make([]byte, HeaderSize+MaxPayload)
	tv := unix.Timeval{Sec: 5}
	unix.SetsockoptTimeval(raw, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	var m message
	for m.typ != typeAck {
		n, _, _, _, rerr := unix.Recvmsg(raw, b, nil, 0)
		if rerr != nil {
			t.Fatalf("no ACK from the workload: %v", rerr)
		}
		if m, err = decodeMessage(b[:n]); err != nil {
			t.Fatal(err)
		}
	}
	if m.ok || m.fd != "b" || !strings.Contains(m.text, "sent twice") {
		t.Errorf("ACK %+v, want an error for fd \"b\"", m)
	}
}

func TestPush(t *testing.T) {
	for _, tc := range []struct {
		desc string
		// serve answers after receiving the files.
		serve func(c *Conn, files []File) error
		want  string
		fd    string
		is    any
	}{
		{desc: "ok", serve: func(c *Conn, files []File) error { return c.SendAck("", nil) }},
		{desc: "refused fd", serve: func(c *Conn, files []File) error {
			return c.SendAck(files[1].Name, errors.New("preserve: operation not supported"))
		}, want: `handoff: workload "kv": pushing fds to luoinit: peer rejected fd "fd-001": preserve: operation not supported`, fd: "fd-001", is: new(*AckError)},
		{desc: "ERROR", serve: func(c *Conn, files []File) error { return c.SendError("shutting down") },
			want: `handoff: workload "kv": waiting for ACK from luoinit: peer sent ERROR: shutting down`, is: new(*PeerError)},
		{desc: "hang up", serve: func(c *Conn, files []File) error { return nil },
			want: `handoff: workload "kv": waiting for ACK from luoinit: connection closed by peer: unexpected EOF`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			defer noLeak(t)()
			l, err := Listen(filepath.Join(t.TempDir(), "prepare.sock"))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			files := memfds(t, 100)
			defer closeAll(files)
			served := make(chan error, 1)
			go func() {
				served <- func() error {
					c, err := l.Accept()
					if err != nil {
						return err
					}
					defer c.Close()
					c.SetDeadline(time.Now().Add(10 * time.Second))
					h, err := c.ReadHello()
					if err != nil {
						return err
					}
					if h.Direction != DirectionPush || h.Workload != "kv" {
						return fmt.Errorf("HELLO %+v", h)
					}
					got, err := c.ReceiveFiles()
					if err != nil {
						return err
					}
					defer closeAll(got)
					checkSame(t, files, got)
					return tc.serve(c, got)
				}()
			}()
			err = Push(l.Path(), "kv", files, 10*time.Second)
			if serr := <-served; serr != nil {
				t.Fatalf("luoinit side: %v", serr)
			}
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Push = %v", err)
				}
				return
			}
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Push = %v, want %q", err, tc.want)
			}
			if FDOf(err) != tc.fd {
				t.Errorf("FDOf = %q, want %q", FDOf(err), tc.fd)
			}
			if tc.is != nil && !errors.As(err, tc.is) {
				t.Errorf("error is not %T", tc.is)
			}
		})
	}
}

// TestPushRefusedEarly: luoinit refuses after HELLO and closes without
// reading the fds; the workload reports the refusal, not the broken pipe
// (when it was still sending) or the connection reset (when it was done and
// waiting for the ACK).
func TestPushRefusedEarly(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		files int
		wait  time.Duration // before luoinit answers
	}{
		{"while sending", 2000, 0},
		{"after sending", 3, 200 * time.Millisecond},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			defer noLeak(t)()
			l, err := Listen(filepath.Join(t.TempDir(), "prepare.sock"))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			done := make(chan struct{})
			go func() {
				defer close(done)
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				c.ReadHello()
				time.Sleep(tc.wait)
				c.SendError(`unknown workload "kv"`)
				c.Close()
			}()
			files := memfds(t, tc.files)
			defer closeAll(files)
			err = Push(l.Path(), "kv", files, 10*time.Second)
			<-done
			var pe *PeerError
			if !errors.As(err, &pe) || pe.Message != `unknown workload "kv"` {
				t.Fatalf("Push = %v, want the peer's ERROR", err)
			}
		})
	}
}

func TestPushChecks(t *testing.T) {
	if err := Push(filepath.Join(t.TempDir(), "none"), "kv", nil, time.Second); err == nil ||
		!strings.Contains(err.Error(), `workload "kv": connecting to`) || !errors.Is(err, unix.ENOENT) {
		t.Errorf("Push to a missing socket: %v", err)
	}
	l, err := Listen(filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := Push(l.Path(), "a/b", nil, time.Second); err == nil || !strings.Contains(err.Error(), "contains '/'") {
		t.Errorf("Push with a bad workload name: %v", err)
	}
}
