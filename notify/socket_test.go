package notify

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/u-root/uio/ulog/ulogtest"

	"github.com/luoinit/luoinit/manifest"
	"golang.org/x/sys/unix"
)

// The test binary doubles as the processes these tests need: the LISTEN_PID
// shim, and a sender of one datagram (a process other than the test's).
func TestMain(m *testing.M) {
	switch {
	case len(os.Args) > 1 && os.Args[1] == ExecListenArg:
		err := ExecListen(os.Args[2:])
		fmt.Fprintln(os.Stderr, err)
		os.Exit(127)
	case os.Getenv("NOTIFY_TEST_SEND") != "":
		if err := send(os.Getenv(EnvNotifySocket), os.Getenv("NOTIFY_TEST_SEND")); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("sent")
		io.Copy(io.Discard, os.Stdin) // until the test lets it go (sendFrom)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// send sends one datagram to path with fds attached, as sd_pid_notify_with_fds does.
func send(path, msg string, fds ...int) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	return unix.Sendmsg(fd, []byte(msg), oob, &unix.SockaddrUnix{Name: path}, 0)
}

// sendFrom sends msg from a child process of the test, which stays alive
// until the test ends: a process that has exited cannot be placed in the
// process tree, so a sender that exited before its datagram was judged
// would be refused whoever its parent.
func sendFrom(t *testing.T, path, msg string) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "NOTIFY_TEST_SEND="+msg, EnvNotifySocket+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "sent\n" {
		t.Fatalf("helper: %q", line)
	}
}

type logbuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logbuf) Printf(f string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.b, f+"\n", a...)
}

func (l *logbuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitLog waits until the log says want.
func (l *logbuf) wait(t *testing.T, want string) {
	t.Helper()
	l.waitCount(t, want, 1)
}

// waitCount waits until the log says want n times.
func (l *logbuf) waitCount(t *testing.T, want string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Count(l.String(), want) >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the log never said %q %d times:\n%s", want, n, l)
}

func openSocket(t *testing.T, limit int) (*Socket, *logbuf) {
	t.Helper()
	log := &logbuf{}
	reg := NewRegistry(t.TempDir(), log)
	w := manifest.Workload{Name: "sd", Handoff: manifest.HandoffFDStore, FDStoreMax: limit,
		UID: uint32(os.Geteuid()), GID: uint32(os.Getegid())}
	s, err := reg.Open(w)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); s.Store().Close() })
	if again, err := reg.Open(w); err != nil || again != s {
		t.Fatalf("a second Open gave %p, %v; want the same socket", again, err)
	}
	if env := s.Env(); len(env) != 1 || env[0] != EnvNotifySocket+"="+s.Path() {
		t.Fatalf("Env() = %v", env)
	}
	var st unix.Stat_t
	if err := unix.Stat(s.Path(), &st); err != nil || st.Mode&0o777 != 0o600 {
		t.Fatalf("socket mode %o (%v), want 0600", st.Mode&0o777, err)
	}
	return s, log
}

// sleeper is a process that is not the test's: a stranger to a workload
// rooted at the test process, and a root no helper descends from.
func sleeper(t *testing.T) int {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

// copies counts the fds of this process open on f's file (f's own
// included), by device and inode: only the test's own file, so that fds
// other tests' files and the runtime open and close meanwhile do not count.
func copies(t *testing.T, f *os.File) int {
	t.Helper()
	var want unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &want); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		var st unix.Stat_t
		if unix.Stat("/proc/self/fd/"+e.Name(), &st) == nil && st.Dev == want.Dev && st.Ino == want.Ino {
			n++
		}
	}
	return n
}

// settle returns once s has handled every datagram sent to it before:
// it sends one more, too long to be read, which any sender may send and
// which is dropped before anything else is looked at, and waits until
// the log says so. The socket handles one datagram at a time, and closes
// the fds it does not keep once it has logged what it did with them: by
// the time this one is logged, the earlier ones' fds are closed.
func settle(t *testing.T, s *Socket, log *logbuf) {
	t.Helper()
	dropped := fmt.Sprintf("longer than %d bytes (MSG_TRUNC); its 0 fds closed", MaxDatagram)
	n := strings.Count(log.String(), dropped)
	if err := send(s.Path(), strings.Repeat("x", MaxDatagram+1)); err != nil {
		t.Fatal(err)
	}
	log.waitCount(t, dropped, n+1)
}

// noCopies checks that f is the only fd open on its file once s has
// handled what was sent to it: the copy it received was closed.
func noCopies(t *testing.T, s *Socket, log *logbuf, f *os.File, what string) {
	t.Helper()
	settle(t, s, log)
	if n := copies(t, f); n != 1 {
		t.Fatalf("%s: %d fds open on the file sent, want 1 (the test's own): the received copy was not closed", what, n)
	}
}

// A datagram from a process that is not the workload's is refused and the
// fds it carried are closed; the workload's own, and its descendants',
// count.
func TestSocketCredentials(t *testing.T) {
	s, log := openSocket(t, 8)
	stranger := sleeper(t)

	// The workload is the sleeper: the test process is a stranger to it.
	s.Started(stranger)
	f := memfd(t, "mine")
	if err := send(s.Path(), "FDSTORE=1\nFDNAME=stolen\nREADY=1", int(f.Fd())); err != nil {
		t.Fatal(err)
	}
	log.wait(t, fmt.Sprintf("datagram from pid %d refused: not a process of the workload (main pid %d)", os.Getpid(), stranger))
	if s.Store().Len() != 0 {
		t.Fatal("a stranger's fd was stored")
	}
	select {
	case <-s.Ready():
		t.Fatal("a stranger's READY=1 counted")
	default:
	}
	noCopies(t, s, log, f, "after the refusal")
	// A child of the test process is no descendant of the sleeper either.
	sendFrom(t, s.Path(), "READY=1")
	log.waitCount(t, "refused: not a process of the workload", 2)
	if strings.Count(log.String(), "refused") != 2 {
		t.Fatalf("the helper's datagram was not refused:\n%s", log)
	}

	// Now the workload is the test process: its own datagrams and its
	// children's count.
	s.Exited()
	s.Started(os.Getpid())
	sendFrom(t, s.Path(), "STATUS=from a child")
	log.wait(t, "status: from a child")
	if err := send(s.Path(), "FDSTORE=1\nFDNAME=arena", int(f.Fd())); err != nil {
		t.Fatal(err)
	}
	log.wait(t, `1 fds named "arena" added`)
	if err := send(s.Path(), "READY=1"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Ready():
	case <-time.After(5 * time.Second):
		t.Fatalf("READY=1 did not count:\n%s", log)
	}
	if s.ReadyAt() <= 0 {
		t.Fatal("no READY time")
	}
}

// A datagram sent before the run it belongs to is known waits for
// Started instead of being judged against no process.
func TestSocketWaitsForStarted(t *testing.T) {
	s, log := openSocket(t, 8)
	if err := send(s.Path(), "READY=1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if strings.Contains(log.String(), "refused") {
		t.Fatalf("judged before Started:\n%s", log)
	}
	s.Started(os.Getpid())
	select {
	case <-s.Ready():
	case <-time.After(5 * time.Second):
		t.Fatalf("the early READY=1 was lost:\n%s", log)
	}
}

func TestSocketMainPID(t *testing.T) {
	s, log := openSocket(t, 8)
	s.Started(os.Getpid())
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	if err := send(s.Path(), "MAINPID="+strconv.Itoa(child.Process.Pid)); err != nil {
		t.Fatal(err)
	}
	log.wait(t, fmt.Sprintf("main pid is now %d", child.Process.Pid))
	if s.MainPID() != child.Process.Pid {
		t.Fatalf("MainPID() = %d", s.MainPID())
	}
	// Outside the workload's tree: refused.
	if err := send(s.Path(), "MAINPID=1"); err != nil {
		t.Fatal(err)
	}
	log.wait(t, "MAINPID=1 from pid")
	if s.MainPID() != child.Process.Pid {
		t.Fatalf("MAINPID=1 moved the main pid to %d", s.MainPID())
	}
}

func TestSocketFDStore(t *testing.T) {
	s, log := openSocket(t, 2)
	s.Started(os.Getpid())
	a, b, c := memfd(t, "a"), memfd(t, "b"), memfd(t, "c")
	steps := []struct {
		msg  string
		fds  []int
		says string
	}{
		{"FDSTORE=1", []int{int(a.Fd())}, `1 fds named "stored" added`},
		{"FDSTORE=1\nFDNAME=bad:name", []int{int(b.Fd())}, `1 fds named "stored" added`},
		{"FDSTORE=1\nFDNAME=x", []int{int(c.Fd())}, `cannot store more fds than fdstore_max = 2; 1 fds named "x" closed`},
		{"STATUS=no store", []int{int(c.Fd())}, "1 fds came without FDSTORE=1 and were closed"},
		{"FDSTOREREMOVE=1", nil, "FDSTOREREMOVE=1 without a valid FDNAME= ignored"},
		{"FDSTOREREMOVE=1\nFDNAME=stored", nil, `2 fds named "stored" removed from the fd store (0 left)`},
		{"FDSTORE=1\nFDNAME=c\nFDPOLL=0", []int{int(c.Fd()), int(c.Fd())}, `1 fds named "c" added, 1 already stored`},
		{"READY=1\x00junk", nil, "NUL byte at offset 7"},
	}
	for _, st := range steps {
		if err := send(s.Path(), st.msg, st.fds...); err != nil {
			t.Fatal(err)
		}
		log.wait(t, st.says)
	}
	if got := s.Store().Names(); len(got) != 1 || got[0] != "c" {
		t.Fatalf("store holds %v, want [c]", got)
	}
	if !strings.Contains(log.String(), `FDNAME="bad:name"`) {
		t.Fatalf("the invalid FDNAME is not logged:\n%s", log)
	}
}

// A datagram longer than MaxDatagram is dropped whole, its fds closed.
func TestSocketTruncated(t *testing.T) {
	s, log := openSocket(t, 8)
	s.Started(os.Getpid())
	f := memfd(t, "big")
	if err := send(s.Path(), "FDSTORE=1\nSTATUS="+strings.Repeat("x", MaxDatagram), int(f.Fd())); err != nil {
		t.Fatal(err)
	}
	log.wait(t, "longer than 4096 bytes (MSG_TRUNC); its 1 fds closed")
	if s.Store().Len() != 0 {
		t.Fatal("a truncated datagram stored an fd")
	}
	noCopies(t, s, log, f, "after the drop")
}

// The shim sets LISTEN_PID to the pid of the program it executes, and
// the fds stay where they were.
func TestExecListen(t *testing.T) {
	f := memfd(t, "arena")
	f.WriteString("patterned")
	cmd := exec.Command(os.Args[0], ShimArgv("", []string{"/bin/sh", "-c", `echo "$$ $LISTEN_PID $LISTEN_FDS $LISTEN_FDNAMES $(cat <&3)"`})[1:]...)
	cmd.Env = append(os.Environ(), ListenEnv([]string{"arena"})...)
	cmd.Env = append(cmd.Env, EnvListenPID+"=1") // a stale one must not win
	f.Seek(0, 0)
	cmd.ExtraFiles = []*os.File{f}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	if got, want := strings.TrimSpace(string(out)), pid+" "+pid+" 1 arena patterned"; got != want {
		t.Fatalf("the program saw %q, want %q", got, want)
	}
}

func TestExecListenFails(t *testing.T) {
	cmd := exec.Command(os.Args[0], ExecListenArg, "/nonexistent/program")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 127 || !strings.Contains(string(out), `execve("/nonexistent/program"`) {
		t.Fatalf("err %v, output %q; want exit 127 naming the execve", err, out)
	}
}

// A datagram the kernel flagged truncated is dropped with its fds closed,
// before anything else is looked at.
func TestHandleTruncatedControl(t *testing.T) {
	s, log := openSocket(t, 8)
	s.Started(os.Getpid())
	f := memfd(t, "cut")
	s.handle(&datagram{data: []byte("FDSTORE=1"), fds: []*os.File{f}, cred: &unix.Ucred{Pid: int32(os.Getpid())},
		trunc: "control data truncated (MSG_CTRUNC)"})
	if !closed(f) || s.Store().Len() != 0 {
		t.Fatal("the fd of a truncated datagram was kept")
	}
	if !strings.Contains(log.String(), "dropped: control data truncated (MSG_CTRUNC); its 1 fds closed") {
		t.Fatalf("not logged:\n%s", log)
	}
}

// A datagram that no run comes for is refused after a while, its fds
// closed, instead of waiting for good.
func TestSocketNoRun(t *testing.T) {
	s, log := openSocket(t, 8)
	s.mu.Lock()
	s.startWait = 50 * time.Millisecond
	s.mu.Unlock()
	f := memfd(t, "late")
	if err := send(s.Path(), "FDSTORE=1", int(f.Fd())); err != nil {
		t.Fatal(err)
	}
	log.wait(t, fmt.Sprintf("datagram from pid %d refused: no process of the workload has run for 50ms", os.Getpid()))
	if s.Store().Len() != 0 {
		t.Fatalf("store %d: the refused datagram's fd was kept", s.Store().Len())
	}
	noCopies(t, s, log, f, "after the refusal")
}

// A socket file an earlier PID 1 left is replaced; a file that is not a
// socket is left alone, and the workload keeps its fd store without a
// NOTIFY_SOCKET.
func TestOpenOverLeftovers(t *testing.T) {
	dir := t.TempDir()
	w := manifest.Workload{Name: "left", Handoff: manifest.HandoffFDStore, FDStoreMax: 4,
		UID: uint32(os.Geteuid()), GID: uint32(os.Getegid())}
	path := filepath.Join(dir, w.Name)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	s, err := NewRegistry(dir, ulogtest.Logger{TB: t}).Open(w)
	if err != nil || s.Path() != path {
		t.Fatalf("Open over a stale socket: %v, path %q", err, s.Path())
	}
	s.Close()
	s.Store().Close()

	os.WriteFile(path, []byte("keep"), 0o644)
	s, err = NewRegistry(dir, ulogtest.Logger{TB: t}).Open(w)
	if err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Fatalf("Open over a regular file: %v", err)
	}
	defer s.Store().Close()
	if s.Path() != "" || s.Env() != nil || s.Store() == nil {
		t.Fatalf("the socket that failed: path %q, env %v, store %v; want a store only", s.Path(), s.Env(), s.Store())
	}
	if b, _ := os.ReadFile(path); string(b) != "keep" {
		t.Fatal("Open removed a regular file")
	}
}
