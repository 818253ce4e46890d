package pid1

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/u-root/uio/ulog"
	"golang.org/x/sys/unix"
)

// Reaper runs the only wait4 of the process and hands each child's exit
// status to whoever started it. PID 1 inherits every orphan of the system,
// and each must be reaped or it stays a zombie; but a wait4(-1) loop takes
// the status that exec.Cmd.Wait or os.Process.Wait is waiting for. So every
// child of the process is started with Reaper.Start, and nothing else in
// the process may wait, start a child with os/exec or os.StartProcess, or
// ignore SIGCHLD (with SIG_IGN the kernel reaps children itself and their
// statuses are lost). There is one Reaper per process: a second one
// would take the first one's children.
type Reaper struct {
	log  ulog.Logger
	sigc chan os.Signal

	// mu is held across fork+exec and the registration of the pid in
	// Start, and across each wait4 in reap: a child that exits before
	// Start has registered it cannot be reaped until it is, so its status
	// is never taken for an orphan's.
	mu      sync.Mutex
	procs   map[int]*Proc
	orphans int
	changed chan struct{} // closed and replaced whenever a process is reaped
}

// reapTick is a safety net under SIGCHLD: a reaping pass runs at least
// this often, should some code reset the handling of SIGCHLD.
var reapTick = 5 * time.Second

// active is the first Reaper of the process, which Shutdown and Fatal use
// when given none.
var active atomic.Pointer[Reaper]

// NewReaper starts the reaping loop. SIGCHLD is registered before the
// first pass, so a child that exits in between still wakes the loop.
func NewReaper(log ulog.Logger) *Reaper {
	r := &Reaper{
		log:     orDiscard(log),
		sigc:    make(chan os.Signal, 1),
		procs:   make(map[int]*Proc),
		changed: make(chan struct{}),
	}
	signal.Notify(r.sigc, unix.SIGCHLD)
	active.CompareAndSwap(nil, r)
	go r.loop()
	return r
}

// theReaper is r, or the process's Reaper, or a new one.
func theReaper(log ulog.Logger, r *Reaper) *Reaper {
	if r != nil {
		return r
	}
	if r := active.Load(); r != nil {
		return r
	}
	return NewReaper(log)
}

func (r *Reaper) loop() {
	defer Recover(r.log)
	tick := time.NewTicker(reapTick)
	defer tick.Stop()
	for {
		r.reap()
		// SIGCHLD does not queue: one delivery may stand for many exits,
		// and one that arrives while reap runs leaves the channel full,
		// which brings the loop straight back. So reap takes everything
		// there is each time, and nothing is missed.
		select {
		case <-r.sigc:
		case <-tick.C:
		}
	}
}

// reap takes every child that has exited, without blocking.
func (r *Reaper) reap() {
	for {
		var ws unix.WaitStatus
		r.mu.Lock()
		// __WALL: also children whose exit signal is not SIGCHLD (a
		// clone(2) with another one); an orphan of that kind is handed to
		// init as it is.
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG|unix.WALL, nil)
		if err == unix.EINTR {
			r.mu.Unlock()
			continue
		}
		if err != nil || pid <= 0 { // ECHILD: no children; 0: none has exited
			r.mu.Unlock()
			if err != nil && err != unix.ECHILD {
				r.log.Printf("reaper: %v", syscallErr(err, "wait4(-1, WNOHANG|__WALL)"))
			}
			return
		}
		p := r.procs[pid]
		if p != nil {
			delete(r.procs, pid)
			p.status = ws
			close(p.done)
		} else {
			r.orphans++
		}
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
		if p == nil {
			r.log.Printf("reaped pid %d, not started by luoinit: %s", pid, describeStatus(ws))
		}
	}
}

// Orphans is how many processes the Reaper has reaped that it did not
// start: orphans re-parented to PID 1 (or to a subreaper).
func (r *Reaper) Orphans() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.orphans
}

// Running is how many children started with Start have not been reaped.
func (r *Reaper) Running() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.procs)
}

// changes is closed when the next process is reaped.
func (r *Reaper) changes() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// ProcAttr is how Start runs a child. The zero value runs it as PID 1's
// user, in PID 1's directory and environment, with stdio on /dev/null.
type ProcAttr struct {
	Env []string // nil: PID 1's environment
	Dir string   // "": PID 1's directory

	// Credential sets the child's uid and gid. Its supplementary groups
	// are Credential.Groups: nil clears them (setgroups(0, NULL)), unless
	// NoSetGroups. nil: PID 1's credentials.
	Credential *syscall.Credential

	// Stdin, Stdout and Stderr become fds 0, 1 and 2; nil is /dev/null
	// (so Start fails for want of one before /dev is mounted).
	Stdin, Stdout, Stderr *os.File
	// ExtraFiles become fds 3, 4, ... in order; a nil entry leaves that
	// fd closed. These and stdio are the only fds the child gets.
	ExtraFiles []*os.File
	// Setctty makes Stdin, a terminal, the controlling terminal of the
	// child's new session (for an interactive shell on the console).
	Setctty bool

	// For the tests, which run children as init of a new PID namespace.
	cloneflags, unshareflags uintptr
}

// Proc is a child started with Reaper.Start.
type Proc struct {
	Pid  int
	Path string   // the file executed
	Argv []string // its argv

	r      *Reaper
	done   chan struct{}
	status unix.WaitStatus // set before done is closed
}

// defaultPath is the search path for a command without a slash when the
// environment has no PATH: the kernel starts init with HOME and TERM only.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Start runs argv as a child of PID 1, in a session of its own (setsid),
// so that signals to PID 1's process group and job control on PID 1's
// terminal do not reach it. argv[0] without a slash is looked up in the
// PATH of the child's environment.
//
// The child gets stdio and ExtraFiles and no other fd: Go opens its own
// fds close-on-exec, and Start also marks close-on-exec every fd above 2
// that some code opened without it (close_range(3, ~0U,
// CLOSE_RANGE_CLOEXEC)), before each fork.
func (r *Reaper) Start(argv []string, attr *ProcAttr) (*Proc, error) {
	if len(argv) == 0 {
		return nil, errors.New("start: empty argv")
	}
	if attr == nil {
		attr = &ProcAttr{}
	}
	env := attr.Env
	if env == nil {
		env = os.Environ()
	}
	path, err := lookPath(argv[0], env)
	if err != nil {
		return nil, err
	}

	var devNull *os.File
	stdio := func(f *os.File) (uintptr, error) {
		if f != nil {
			return f.Fd(), nil
		}
		if devNull == nil {
			var err error
			if devNull, err = os.OpenFile(os.DevNull, os.O_RDWR, 0); err != nil {
				return 0, fmt.Errorf("start %s: stdio: %w", path, err)
			}
		}
		return devNull.Fd(), nil
	}
	defer func() {
		if devNull != nil {
			devNull.Close()
		}
	}()
	files := make([]uintptr, 0, 3+len(attr.ExtraFiles))
	for _, f := range []*os.File{attr.Stdin, attr.Stdout, attr.Stderr} {
		fd, err := stdio(f)
		if err != nil {
			return nil, err
		}
		files = append(files, fd)
	}
	for _, f := range attr.ExtraFiles {
		if f == nil {
			files = append(files, ^uintptr(0)) // -1: closed in the child
			continue
		}
		files = append(files, f.Fd())
	}
	pa := &syscall.ProcAttr{
		Dir:   attr.Dir,
		Env:   env,
		Files: files,
		Sys: &syscall.SysProcAttr{
			Setsid:       true,
			Setctty:      attr.Setctty,
			Ctty:         0,
			Credential:   attr.Credential,
			Cloneflags:   attr.cloneflags,
			Unshareflags: attr.unshareflags,
		},
	}

	r.mu.Lock()
	cloexecAbove2()
	pid, err := syscall.ForkExec(path, argv, pa)
	var p *Proc
	if err == nil {
		p = &Proc{Pid: pid, Path: path, Argv: argv, r: r, done: make(chan struct{})}
		r.procs[pid] = p
	}
	r.mu.Unlock()
	runtime.KeepAlive(attr)
	if err != nil {
		return nil, syscallErr(err, "fork/exec(%q, %q)", path, argv)
	}
	return p, nil
}

// cloexecAbove2 marks every fd above 2 close-on-exec. ForkExec clears the
// flag in the child on the fds it hands over, so only those cross exec.
func cloexecAbove2() {
	if unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC) == nil {
		return
	}
	// Before Linux 5.11.
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		var fd int
		if _, err := fmt.Sscan(e.Name(), &fd); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}

func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := defaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("start %s: not found in PATH %q: %w", name, path, fs.ErrNotExist)
}

// Done is closed when the child has been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Status is the child's wait status; it waits for Done.
func (p *Proc) Status() unix.WaitStatus {
	<-p.done
	return p.status
}

// Wait waits for the child to be reaped and returns its wait status, and an
// *ExitError when it did not exit with status 0.
func (p *Proc) Wait() (unix.WaitStatus, error) {
	<-p.done
	if p.status.Exited() && p.status.ExitStatus() == 0 {
		return p.status, nil
	}
	return p.status, &ExitError{Pid: p.Pid, Path: p.Path, Status: p.status}
}

// Signal sends sig to the child, or returns os.ErrProcessDone once it has
// been reaped. Its pid cannot have been reused: the Reaper does not reap
// while Signal holds it.
func (p *Proc) Signal(sig unix.Signal) error {
	return p.kill(p.Pid, sig)
}

// SignalGroup sends sig to the child's process group: the child and what it
// started, unless they made groups of their own. Once the child has been
// reaped it returns os.ErrProcessDone, even if some of the group remain:
// the group's id is a pid free for reuse.
func (p *Proc) SignalGroup(sig unix.Signal) error {
	return p.kill(-p.Pid, sig)
}

func (p *Proc) kill(pid int, sig unix.Signal) error {
	p.r.mu.Lock()
	defer p.r.mu.Unlock()
	select {
	case <-p.done:
		return os.ErrProcessDone
	default:
	}
	return syscallErr(unix.Kill(pid, sig), "kill(%d, %s)", pid, signalName(sig))
}

// ExitError is a child that did not exit with status 0.
type ExitError struct {
	Pid    int
	Path   string
	Status unix.WaitStatus
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("%s (pid %d) %s", e.Path, e.Pid, describeStatus(e.Status))
}
