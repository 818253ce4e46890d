// What needs a real PID 1 (the kernel's protection of init, reboot(2),
// kill(-1), orphans) is tested here as the init of a new PID namespace,
// which the kernel treats the same way. What only the kernel's own init
// shows (ctrl-alt-del, a real reboot(2), /dev/kmsg and /dev/console) is
// for a VM scenario under tests/.

package pid1

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the children of the tests: with helperEnv set
// it runs the helper of that name instead of the tests. Most helpers run as
// init of a new PID namespace, the closest a test gets to PID 1: the kernel
// protects it from signals it has no handler for, kill(-1) reaches only the
// namespace, orphans in it are re-parented to it, and reboot(2) in it ends
// the namespace with SIGHUP (restart) or SIGINT (halt, power off) as its
// init's exit status, instead of rebooting the machine.
const (
	helperEnv   = "PID1_TEST_HELPER"
	parentNSEnv = "PID1_TEST_PARENT_NS" // the parent's pid or mnt namespace
	rootEnv     = "PID1_TEST_ROOT"
)

var helpers = map[string]func() int{
	"signals":       helperSignals,
	"nosignals":     helperNoSignals,
	"shutdown":      helperShutdown,
	"shutdown-all":  helperShutdownAll,
	"fatal-guard":   helperFatalGuard,
	"fatal-shell":   helperFatalShell,
	"fatal-noshell": helperFatalNoShell,
	"fatal-unset":   helperFatalUnset,
	"mountall":      helperMountAll,
}

func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		h, ok := helpers[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "no helper %q\n", name)
			os.Exit(100)
		}
		os.Exit(h())
	}
	// Children re-parented to the test process, not to the machine's
	// init, so that the Reaper meets orphans here as it does as PID 1.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "prctl(PR_SET_CHILD_SUBREAPER): %v\n", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// recLogger records lines, for assertions.
type recLogger struct {
	mu    sync.Mutex
	lines []string
}

func (l *recLogger) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *recLogger) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, sub) {
			n++
		}
	}
	return n
}

func (l *recLogger) n() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

func (l *recLogger) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var (
	sharedOnce   sync.Once
	sharedReaper *Reaper
	sharedLog    *recLogger
)

// testReaper is the Reaper of the test process: one per process, since
// two wait4(-1) loops would take each other's children. Every child of the
// tests is started with it. Its safety tick is off, so that the tests
// depend on SIGCHLD.
func testReaper() (*Reaper, *recLogger) {
	sharedOnce.Do(func() {
		reapTick = time.Hour
		sharedLog = &recLogger{}
		sharedReaper = NewReaper(sharedLog)
	})
	return sharedReaper, sharedLog
}

// waitProc waits for p, killing it and failing the test after timeout.
func waitProc(t *testing.T, p *Proc, timeout time.Duration) unix.WaitStatus {
	t.Helper()
	select {
	case <-p.Done():
		return p.Status()
	case <-time.After(timeout):
		_ = p.Signal(unix.SIGKILL)
		<-p.Done()
		t.Fatalf("%s (pid %d) still running after %v; killed", p.Path, p.Pid, timeout)
		return 0
	}
}

// startHelper runs helper as a child of the test process, in new
// namespaces (CLONE_NEWPID for the init helpers, CLONE_NEWNS always, so
// that its mounts stay its own), with stdout as given and stderr to a file
// it returns. It skips the test when not root.
func startHelper(t *testing.T, helper string, newPID bool, stdout *os.File, env ...string) (*Proc, *os.File) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs a helper in new namespaces")
	}
	r, _ := testReaper()
	stderr, err := os.CreateTemp(t.TempDir(), helper+".stderr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stderr.Close() })
	ns := "mnt"
	attr := &ProcAttr{Stdout: stdout, Stderr: stderr, unshareflags: unix.CLONE_NEWNS}
	if newPID {
		ns = "pid"
		attr.cloneflags = unix.CLONE_NEWPID
	}
	link, err := os.Readlink("/proc/self/ns/" + ns)
	if err != nil {
		t.Skipf("no namespaces: %v", err)
	}
	attr.Env = append(os.Environ(), helperEnv+"="+helper, parentNSEnv+"="+link)
	attr.Env = append(attr.Env, env...)
	p, err := r.Start([]string{os.Args[0], "-test.run=^$"}, attr)
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) {
		t.Skipf("cannot create namespaces here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Signal(unix.SIGKILL)
		<-p.Done()
	})
	return p, stderr
}

func readAll(t *testing.T, f *os.File) string {
	t.Helper()
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// linesOf sends the lines read from r down the returned channel.
func linesOf(r *os.File) <-chan string {
	c := make(chan string, 16)
	go func() {
		defer close(c)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			c <- sc.Text()
		}
	}()
	return c
}

func expectLine(t *testing.T, c <-chan string, want string, timeout time.Duration) {
	t.Helper()
	select {
	case got, ok := <-c:
		if !ok || got != want {
			t.Fatalf("child said %q (open %v), want %q", got, ok, want)
		}
	case <-time.After(timeout):
		t.Fatalf("child did not say %q within %v", want, timeout)
	}
}

// asInit is the start of every init helper. It refuses to go on unless the
// helper is init of a PID namespace other than the test's (kill(-1) and
// reboot(2) follow), then mounts a /proc of that namespace (in the
// helper's own mount namespace) so that Shutdown sees its processes only.
func asInit() bool {
	link, err := os.Readlink("/proc/self/ns/pid")
	if os.Getpid() != 1 || err != nil || link == os.Getenv(parentNSEnv) {
		fmt.Fprintf(os.Stderr, "helper: not init of a new PID namespace (pid %d, %s, %v)\n", os.Getpid(), link, err)
		return false
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		fmt.Fprintf(os.Stderr, "helper: mount proc: %v\n", err)
		return false
	}
	return true
}
