package prepare

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/u-root/uio/ulog/ulogtest"

	"github.com/luoinit/luoinit/handoff"
	"golang.org/x/sys/unix"
)

// What preserving a push needs (/dev/liveupdate) is covered by the VM
// scenarios (TestPrepare, TestFault...). These tests cover the serving.

func startServer(t *testing.T, uids map[string]uint32, timeout time.Duration) (*pushServer, string) {
	return startServerFor(t, uids, nil, timeout)
}

// startServerFor is startServer with the workloads' processes PID 1 knows.
func startServerFor(t *testing.T, uids map[string]uint32, pids map[string]int, timeout time.Duration) (*pushServer, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "prepare.sock")
	l, err := handoff.ListenMode(path, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	srv := servePushes(l, uids, pids, timeout, printf(func(f string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		t.Logf(f, a...)
	}))
	t.Cleanup(srv.stop)
	return srv, path
}

func testMemfd(t *testing.T, name string) *os.File {
	t.Helper()
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), name)
	t.Cleanup(func() { f.Close() })
	return f
}

// A connection that never speaks does not hold up the others: each has
// its own deadline, and pushes are read concurrently.
func TestSilentConnectionDelaysNobody(t *testing.T) {
	srv, path := startServer(t, map[string]uint32{"a": 0, "b": 0}, 10*time.Second)
	var silent []*handoff.Conn
	for i := 0; i < 3; i++ {
		c, err := handoff.Dial(path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	start := time.Now()
	errs := make(chan error, 2)
	for _, w := range []string{"a", "b"} {
		go func() {
			errs <- handoff.Push(path, w, []handoff.File{{Name: "heap", File: testMemfd(t, w)}}, 5*time.Second)
		}()
	}
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case p := <-srv.pushes:
			if len(p.files) != 1 || p.files[0].Name != "heap" {
				t.Errorf("push of %q: files %v", p.workload, p.files)
			}
			closeFiles(p.files)
			p.conn.SendAck("", nil)
			p.conn.Close()
			got[p.workload] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("pushes stuck behind %d silent connections; got %v", len(silent), got)
		}
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("two pushes took %v with silent connections open", d)
	}
}

// connectAs runs f on a goroutine whose OS thread has the effective uid
// uid, which is what the server reads from SO_PEERCRED, so that a test run
// as root can connect as another user. Only that thread changes: the raw
// system calls bypass Go's setresuid, which changes every thread of the
// process, and the thread is never given back to the runtime, so it ends
// with the goroutine. Its filesystem uid goes back to root (allowed, as
// its real uid is root) to reach the socket in the test's private
// directory.
func connectAs(uid uint32, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		const keep = ^uintptr(0)
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, keep, uintptr(uid), keep); e != 0 {
			errc <- fmt.Errorf("setresuid(-1, %d, -1): %w", uid, e)
			return
		}
		unix.RawSyscall(unix.SYS_SETFSUID, 0, 0, 0)
		if euid := unix.Geteuid(); euid != int(uid) {
			errc <- fmt.Errorf("thread's effective uid is %d, want %d", euid, uid)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// Strangers are answered with ERROR, and nothing reaches the caller.
func TestPushServerRefuses(t *testing.T) {
	uid := uint32(os.Getuid())
	// Root may push for any workload: as root, another user's push comes
	// from nobody's uid.
	stranger, asStranger := uid, func(f func() error) error { return f() }
	if uid == 0 {
		stranger = 65534
		asStranger = func(f func() error) error { return connectAs(stranger, f) }
	}
	for _, tc := range []struct {
		desc string
		uids map[string]uint32
		do   func(path string) error
		want string
	}{
		{"unknown workload", map[string]uint32{"a": uid}, func(path string) error {
			return handoff.Push(path, "x", nil, 5*time.Second)
		}, `workload "x" is not waited for`},
		{"pull on the push socket", map[string]uint32{"a": uid}, func(path string) error {
			c, err := handoff.Dial(path)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if err := c.SendHello(handoff.Hello{Direction: handoff.DirectionPull, Workload: "a"}); err != nil {
				return err
			}
			_, err = c.ReceiveFiles()
			return err
		}, "or this is not a push"},
		{"another user's workload", map[string]uint32{"a": stranger + 1}, func(path string) error {
			return asStranger(func() error { return handoff.Push(path, "a", nil, 5*time.Second) })
		}, fmt.Sprintf(`workload "a" runs as uid %d, the connection is from uid %d`, stranger+1, stranger)},
		{"garbage", map[string]uint32{"a": uid}, func(path string) error {
			fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
				return err
			}
			unix.Write(fd, []byte("GET / HTTP/1.0\r\n\r\n"))
			tv := unix.Timeval{Sec: 5}
			unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
			b := make([]byte, 4096)
			n, err := unix.Read(fd, b)
			if err != nil {
				return err
			}
			return errors.New(string(b[:n]))
		}, "bad magic"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			srv, path := startServer(t, tc.uids, 5*time.Second)
			err := tc.do(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
			select {
			case p := <-srv.pushes:
				closeFiles(p.files)
				t.Errorf("a push from %q came through", p.workload)
			case <-time.After(100 * time.Millisecond):
			}
		})
	}
}

// One user cannot hold more than its share of connections: one for each
// of its workloads waited for, and maxConnsPerUID more.
func TestPushServerCapsConnectionsPerUser(t *testing.T) {
	srv, path := startServer(t, map[string]uint32{"a": 0}, 10*time.Second)
	if got := srv.capOf(0); got != maxConnsPerUID+1 {
		t.Fatalf("cap of uid 0 with one workload: %d, want %d", got, maxConnsPerUID+1)
	}
	if got := srv.capOf(1000); got != maxConnsPerUID {
		t.Fatalf("cap of a uid without workloads: %d, want %d", got, maxConnsPerUID)
	}
	limit := srv.capOf(0)
	var conns []*handoff.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < limit; i++ {
		c, err := handoff.Dial(path)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// Let the server accept them all before the one too many.
	time.Sleep(200 * time.Millisecond)
	c, err := handoff.Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = c.ReadHello()
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("has %d connections open to the push socket already", limit)) {
		t.Errorf("connection %d: %v, want refused", limit+1, err)
	}
	// Closing one frees a place: the next push is served.
	// The server sees the close when it reads it: until then a push may
	// still be refused, so it is tried again for up to 5 s.
	conns[0].Close()
	conns = conns[1:]
	deadline := time.After(5 * time.Second)
	for {
		refused := make(chan error, 1)
		go func() { refused <- handoff.Push(path, "a", nil, 5*time.Second) }()
		select {
		case p := <-srv.pushes:
			p.conn.SendAck("", nil)
			p.conn.Close()
			return
		case err := <-refused:
			if err == nil || !strings.Contains(err.Error(), "connections open to the push socket already") {
				t.Fatalf("push after a place was freed: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		case <-deadline:
			t.Fatal("no push served after a place was freed")
		}
	}
}

// stop closes what is being served and leaves no goroutine behind.
func TestPushServerStop(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prepare.sock")
	l, err := handoff.ListenMode(path, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	srv := servePushes(l, map[string]uint32{"a": 0}, nil, time.Minute, ulogtest.Logger{TB: t})
	c, err := handoff.Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(50 * time.Millisecond)
	done := make(chan struct{})
	go func() { srv.stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("stop waits for a silent connection's deadline")
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file after stop: %v", err)
	}
}

// printf makes a logger of a function, for the tests.
type printf func(format string, args ...any)

func (f printf) Printf(format string, args ...any) { f(format, args...) }

// TestPushServerProcessTree: when PID 1 answers, a push for a workload
// comes from its process or one below it; anyone else of the same uid is
// refused by name and pid.
func TestPushServerProcessTree(t *testing.T) {
	uid := uint32(os.Getuid())
	other := exec.Command("sleep", "5")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { other.Process.Kill(); other.Wait() }()
	f := testMemfd(t, "arena")
	for _, tc := range []struct {
		desc string
		pids map[string]int
		want string // "" accepted
	}{
		{"this process is the workload", map[string]int{"a": os.Getpid()}, ""},
		{"a parent of this process is the workload", map[string]int{"a": os.Getppid()}, ""},
		{"another process is the workload", map[string]int{"a": other.Process.Pid},
			fmt.Sprintf(`workload "a" is pid %d; the connection is from pid %d, which is not in its process tree`, other.Process.Pid, os.Getpid())},
		{"the workload is not running", map[string]int{}, `workload "a" is not running under PID 1`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			srv, path := startServerFor(t, map[string]uint32{"a": uid}, tc.pids, 5*time.Second)
			done := make(chan error, 1)
			go func() { done <- handoff.Push(path, "a", []handoff.File{{Name: "arena", File: f}}, 5*time.Second) }()
			if tc.want != "" {
				if err := <-done; err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("push: %v, want %q", err, tc.want)
				}
				return
			}
			select {
			case p := <-srv.pushes:
				if p.workload != "a" || len(p.files) != 1 {
					t.Errorf("push %+v", p)
				}
				p.conn.SendAck("", nil)
				closeFiles(p.files)
				p.conn.Close()
			case err := <-done:
				t.Fatalf("push ended before the server took it: %v", err)
			}
		})
	}
}
