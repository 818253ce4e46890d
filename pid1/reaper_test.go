package pid1

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestReaperExitStatus(t *testing.T) {
	r, _ := testReaper()
	tests := []struct {
		name     string
		argv     []string
		exited   bool
		code     int
		signal   unix.Signal
		wantErr  string // of Wait
		startErr error
	}{
		{name: "exit 0", argv: []string{"/bin/sh", "-c", "exit 0"}, exited: true, code: 0},
		{name: "exit 3", argv: []string{"/bin/sh", "-c", "exit 3"}, exited: true, code: 3, wantErr: "/bin/sh (pid %d) exited with status 3"},
		{name: "killed", argv: []string{"/bin/sh", "-c", "kill -TERM $$"}, signal: unix.SIGTERM, wantErr: "/bin/sh (pid %d) killed by SIGTERM"},
		{name: "looked up in PATH", argv: []string{"sh", "-c", "exit 4"}, exited: true, code: 4, wantErr: "/sh (pid %d) exited with status 4"},
		{name: "no such file", argv: []string{"/nonexistent/cmd"}, startErr: unix.ENOENT},
		{name: "not in PATH", argv: []string{"no-such-command-here"}, startErr: os.ErrNotExist},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := r.Start(tc.argv, nil)
			if tc.startErr != nil {
				if !errors.Is(err, tc.startErr) {
					t.Fatalf("Start = %v, want %v", err, tc.startErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			waitProc(t, p, 10*time.Second)
			ws, err := p.Wait()
			if ws.Exited() != tc.exited || (tc.exited && ws.ExitStatus() != tc.code) || (!tc.exited && ws.Signal() != tc.signal) {
				t.Errorf("%s, want exited %v code %d signal %v", describeStatus(ws), tc.exited, tc.code, tc.signal)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Wait error %v, want none", err)
			case tc.wantErr != "" && (err == nil || !strings.HasSuffix(err.Error(), fmt.Sprintf(tc.wantErr, p.Pid))):
				t.Errorf("Wait error %v, want one ending %q", err, fmt.Sprintf(tc.wantErr, p.Pid))
			}
		})
	}
	assertNoZombies(t)
}

// TestReaperOrphans makes a child leave an orphan behind. The test process
// is a subreaper (TestMain), so the orphan is re-parented to it and must be
// reaped and counted as the Reaper would as PID 1.
func TestReaperOrphans(t *testing.T) {
	r, log := testReaper()
	before := r.Orphans()
	out, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	// The background job is the orphan; its pid goes to out.
	p, err := r.Start([]string{"/bin/sh", "-c", "(sleep 0.2; exit 7) & echo $!; exit 0"}, &ProcAttr{Stdout: out})
	if err != nil {
		t.Fatal(err)
	}
	if ws := waitProc(t, p, 10*time.Second); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("child %s, want exit 0", describeStatus(ws))
	}
	orphan, err := strconv.Atoi(strings.TrimSpace(readAll(t, out)))
	if err != nil {
		t.Fatalf("orphan pid: %v", err)
	}
	want := fmt.Sprintf("reaped pid %d, not started by luoinit: exited with status 7", orphan)
	if !waitFor(10*time.Second, func() bool { return log.count(want) == 1 }) {
		t.Fatalf("log lacks %q:\n%s", want, log.text())
	}
	if got := r.Orphans(); got < before+1 {
		t.Errorf("Orphans() = %d, want at least %d", got, before+1)
	}
	assertNoZombies(t)
}

// TestReaperConcurrent starts many fast children at once: each status must
// reach its own starter, none may be taken for an orphan's (a child that
// exits before Start has registered it), and none may be left a zombie.
func TestReaperConcurrent(t *testing.T) {
	r, _ := testReaper()
	before := r.Orphans()
	const workers, each = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				code := (w*each + i) % 256
				argv := []string{"/bin/sh", "-c", "exit " + strconv.Itoa(code)}
				if i%2 == 1 {
					argv = []string{"/bin/true"} // exits faster than sh
					code = 0
				}
				p, err := r.Start(argv, nil)
				if err != nil {
					errs <- err
					continue
				}
				select {
				case <-p.Done():
				case <-time.After(20 * time.Second):
					errs <- fmt.Errorf("pid %d: no exit status after 20s", p.Pid)
					continue
				}
				if ws := p.Status(); !ws.Exited() || ws.ExitStatus() != code {
					errs <- fmt.Errorf("pid %d (%q): %s, want exit %d", p.Pid, argv, describeStatus(ws), code)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := r.Orphans(); got != before {
		t.Errorf("%d children were reaped as orphans", got-before)
	}
	if n := r.Running(); n != 0 {
		t.Errorf("Running() = %d after all exited", n)
	}
	assertNoZombies(t)
}

func TestProcSignal(t *testing.T) {
	r, _ := testReaper()
	p, err := r.Start([]string{"/bin/sleep", "100"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if ws := waitProc(t, p, 10*time.Second); !ws.Signaled() || ws.Signal() != unix.SIGTERM {
		t.Errorf("%s, want killed by SIGTERM", describeStatus(ws))
	}
	if err := p.Signal(unix.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal after exit = %v, want os.ErrProcessDone", err)
	}
}

// TestProcSignalGroup kills a child and its own child together: the child
// leads a session and group of its own (setsid).
func TestProcSignalGroup(t *testing.T) {
	r, log := testReaper()
	out, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	p, err := r.Start([]string{"/bin/sh", "-c", "sleep 100 & echo $!; wait"}, &ProcAttr{Stdout: out})
	if err != nil {
		t.Fatal(err)
	}
	var grandchild int
	if !waitFor(10*time.Second, func() bool {
		grandchild, err = strconv.Atoi(strings.TrimSpace(readAll(t, out)))
		return err == nil
	}) {
		t.Fatal("no pid from the child")
	}
	if sid, err := unix.Getsid(p.Pid); err != nil || sid != p.Pid {
		t.Errorf("child session %d (%v), want its own, %d", sid, err, p.Pid)
	}
	if err := p.SignalGroup(unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if ws := waitProc(t, p, 10*time.Second); !ws.Signaled() || ws.Signal() != unix.SIGTERM {
		t.Errorf("child %s, want killed by SIGTERM", describeStatus(ws))
	}
	// Reaped by the Reaper as an orphan, or by the shell if it was quick.
	stat := fmt.Sprintf("/proc/%d/stat", grandchild)
	if !waitFor(10*time.Second, func() bool { _, err := os.Stat(stat); return err != nil }) {
		t.Errorf("pid %d, the child's child, still there:\n%s", grandchild, log.text())
	}
}

// TestStartFDs checks that a child gets stdio and ExtraFiles and nothing
// else, even fds of the parent opened without O_CLOEXEC.
func TestStartFDs(t *testing.T) {
	r, _ := testReaper()
	// Two fds that would leak but for Start: one where open put it, one
	// dup'ed to 100.
	leak, err := unix.Open("/dev/null", unix.O_RDONLY, 0) // no O_CLOEXEC
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(leak)
	if _, err := unix.FcntlInt(uintptr(100), unix.F_GETFD, 0); err != unix.EBADF {
		t.Fatalf("fd 100 in use (%v)", err)
	}
	if err := unix.Dup3(leak, 100, 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(100)
	extra := func() *os.File {
		f, err := os.Open("/dev/null")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	tests := []struct {
		name  string
		extra []*os.File
		want  string
	}{
		{"stdio only", nil, "0 1 2"},
		{"one extra file", []*os.File{extra()}, "0 1 2 3"},
		{"two extra files", []*os.File{extra(), extra()}, "0 1 2 3 4"},
		{"a nil extra file stays closed", []*os.File{nil, extra()}, "0 1 2 4"},
	}
	// The shell tests each fd with stat(2) on /proc/self/fd/N: it opens
	// nothing that would show up itself.
	const script = `i=0; while [ $i -lt 128 ]; do [ -e /proc/self/fd/$i ] && printf '%s ' $i; i=$((i+1)); done`
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := os.CreateTemp(t.TempDir(), "out")
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			p, err := r.Start([]string{"/bin/sh", "-c", script}, &ProcAttr{Stdout: out, ExtraFiles: tc.extra})
			if err != nil {
				t.Fatal(err)
			}
			if ws := waitProc(t, p, 10*time.Second); !ws.Exited() {
				t.Fatalf("child %s", describeStatus(ws))
			}
			if got := strings.TrimSpace(readAll(t, out)); got != tc.want {
				t.Errorf("child has fds %q, want %q", got, tc.want)
			}
		})
	}
}

func TestStartAttributes(t *testing.T) {
	r, _ := testReaper()
	dir := t.TempDir()
	content := filepath.Join(dir, "content")
	if err := os.WriteFile(content, []byte("from fd 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	open := func(name string) *os.File {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	tests := []struct {
		name     string
		attr     ProcAttr
		script   string
		want     string
		needRoot bool
	}{
		{name: "environment", attr: ProcAttr{Env: []string{"A=b", "PATH=/bin"}}, script: `echo "$A $PATH $HOME"`, want: "b /bin"},
		{name: "directory", attr: ProcAttr{Dir: dir}, script: `pwd`, want: dir},
		{name: "stdin", attr: ProcAttr{Stdin: open(content)}, script: `read x; echo "$x"`, want: "from fd 3"},
		{name: "stdin defaults to /dev/null", script: `read x || echo EOF`, want: "EOF"},
		{name: "extra file is fd 3", attr: ProcAttr{ExtraFiles: []*os.File{open(content)}}, script: `read x <&3; echo "$x"`, want: "from fd 3"},
		{
			name:     "uid, gid, no supplementary groups",
			attr:     ProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}},
			script:   `while read k a b; do case $k in Uid:|Gid:) printf '%s%s ' $k $a;; Groups:) printf '%s[%s]' $k "$a";; esac; done </proc/self/status`,
			want:     "Uid:65534 Gid:65534 Groups:[]",
			needRoot: true,
		},
		{name: "own session", script: `read _ _ _ _ _ sid _ </proc/self/stat; [ "$sid" = "$$" ] && echo leader`, want: "leader"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needRoot && os.Geteuid() != 0 {
				t.Skip("needs root")
			}
			out, err := os.CreateTemp(t.TempDir(), "out")
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			attr := tc.attr
			attr.Stdout = out
			attr.Stderr = out
			p, err := r.Start([]string{"/bin/sh", "-c", tc.script}, &attr)
			if err != nil {
				t.Fatal(err)
			}
			waitProc(t, p, 10*time.Second)
			if got := strings.TrimSpace(readAll(t, out)); got != tc.want {
				t.Errorf("child said %q, want %q", got, tc.want)
			}
		})
	}
}

// assertNoZombies fails if a child of the test process stays a zombie.
func assertNoZombies(t *testing.T) {
	t.Helper()
	var zombies []procStat
	if !waitFor(5*time.Second, func() bool {
		zombies = zombies[:0]
		ps, err := userProcesses("/proc", os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.PPid == os.Getpid() && p.State == 'Z' {
				zombies = append(zombies, p)
			}
		}
		return len(zombies) == 0
	}) {
		t.Errorf("zombies left: %s", describeProcs(zombies, 20))
	}
}
