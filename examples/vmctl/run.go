package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/luoinit/luoinit/notify"
)

type runConfig struct {
	state   string
	fdNames []string // fds that must be passed and inherited, named or not in argv
	argv    []string // QEMU's, with {fd:NAME} in it
}

// listenFDs is what sd_listen_fds(3) passes: fds from 3 on, in order, with
// names. A name may be given to more than one fd.
type listenFDs struct {
	fds   []int
	names []string
}

// parseListenFDs reads LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID through
// getenv. A LISTEN_PID that is not pid means the fds were for another
// process; a missing one is taken as ours (a shell cannot easily set it
// for the program it execs). Fds without a name in LISTEN_FDNAMES are
// named "unknown", as sd_listen_fds_with_names(3) does.
func parseListenFDs(getenv func(string) string, pid int) (listenFDs, error) {
	n := getenv(notify.EnvListenFDs)
	if n == "" {
		return listenFDs{}, nil
	}
	count, err := strconv.Atoi(n)
	if err != nil || count < 0 {
		return listenFDs{}, fmt.Errorf("%s=%q: not a count of fds", notify.EnvListenFDs, n)
	}
	if p := getenv(notify.EnvListenPID); p != "" && p != strconv.Itoa(pid) {
		return listenFDs{}, fmt.Errorf("%s=%s is not vmctl's pid %d: its %s=%d fds were passed to another process", notify.EnvListenPID, p, pid, notify.EnvListenFDs, count)
	}
	var names []string
	if v := getenv(notify.EnvListenNames); v != "" {
		names = strings.Split(v, ":")
	}
	if len(names) > count {
		return listenFDs{}, fmt.Errorf("%s=%q names %d fds, %s=%d", notify.EnvListenNames, getenv(notify.EnvListenNames), len(names), notify.EnvListenFDs, count)
	}
	l := listenFDs{}
	for i := 0; i < count; i++ {
		name := "unknown"
		if i < len(names) {
			name = names[i]
		}
		l.fds = append(l.fds, notify.ListenFDsStart+i)
		l.names = append(l.names, name)
	}
	return l, nil
}

// fd is the fd passed as name; an error if none or more than one is.
func (l listenFDs) fd(name string) (int, error) {
	found := -1
	for i, n := range l.names {
		if n != name {
			continue
		}
		if found >= 0 {
			return -1, fmt.Errorf("fd %q: passed twice (%s=%s)", name, notify.EnvListenNames, strings.Join(l.names, ":"))
		}
		found = l.fds[i]
	}
	if found < 0 {
		return -1, fmt.Errorf("fd %q: not passed (%s=%s)", name, notify.EnvListenNames, strings.Join(l.names, ":"))
	}
	return found, nil
}

// substitute replaces every {fd:NAME} in argv with the number of the fd
// passed as NAME. It returns the new argv and the fds it used.
func substitute(argv []string, l listenFDs) ([]string, []int, error) {
	out := make([]string, len(argv))
	var used []int
	for i, arg := range argv {
		var b strings.Builder
		rest := arg
		for {
			before, after, found := strings.Cut(rest, "{fd:")
			b.WriteString(before)
			if !found {
				break
			}
			name, tail, closed := strings.Cut(after, "}")
			if !closed {
				return nil, nil, fmt.Errorf("argument %q: {fd: without its }", arg)
			}
			fd, err := l.fd(name)
			if err != nil {
				return nil, nil, fmt.Errorf("argument %q: %w", arg, err)
			}
			b.WriteString(strconv.Itoa(fd))
			used = append(used, fd)
			rest = tail
		}
		out[i] = b.String()
	}
	return out, used, nil
}

// incomingSuffix names the state while QEMU loads it: renamed first, so
// that a QEMU that dies loading it does not load it again.
const incomingSuffix = ".incoming"

// loadState renames the state, if there is one, to its incoming name and
// returns what QEMU needs to load it at start: the capability and the mode
// it was saved with, set before the load, and the file. QEMU starts the VM
// once it is loaded (no -S), so no cont is needed. undo puts the state
// back under its name.
func loadState(state string) (args []string, undo func(), err error) {
	undo = func() {}
	abs, err := filepath.Abs(state)
	if err != nil {
		return nil, undo, err
	}
	incoming := abs + incomingSuffix
	uri, err := fileURI(incoming)
	if err != nil {
		return nil, undo, err
	}
	if _, err := os.Stat(abs); errors.Is(err, os.ErrNotExist) {
		return nil, undo, nil
	} else if err != nil {
		return nil, undo, err
	}
	if err := os.Rename(abs, incoming); err != nil {
		return nil, undo, err
	}
	args = []string{
		"-global", "migration.x-ignore-shared=on",
		"-global", "migration.mode=cpr-reboot",
		"-incoming", uri,
	}
	return args, func() { os.Rename(incoming, abs) }, nil
}

// fileURI is QEMU's file: URI of path, which must be absolute (QEMU's
// working directory is not vmctl's) and hold no comma (QEMU takes options
// after one).
func fileURI(path string) (string, error) {
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("%s: QEMU needs an absolute path", path)
	}
	if strings.Contains(path, ",") {
		return "", fmt.Errorf("%s: QEMU cannot take a path with a comma in a file: URI", path)
	}
	return "file:" + path, nil
}

// process is what prepareRun reads of vmctl's process and does to it.
type process struct {
	environ []string
	pid     int
	inherit func(fd int) error // clears FD_CLOEXEC
}

// getenv is the value of key in environ, the first if there are two, as
// getenv(3) and os.Getenv take it.
func getenv(environ []string, key string) string {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// inheritFD clears FD_CLOEXEC, so that QEMU inherits fd; it also fails on
// an fd that is not open.
func inheritFD(fd int) error {
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
		return fmt.Errorf("fcntl(%d, F_SETFD, 0): %w", fd, err)
	}
	return nil
}

// prepareRun works out QEMU's argv and environment: fds substituted and
// made inheritable, the state (if there is one) renamed and loaded. It
// returns a function that puts the state back if QEMU is not started.
func prepareRun(cfg runConfig, p process) (argv, env []string, undo func(), err error) {
	undo = func() {}
	if len(cfg.argv) == 0 {
		return nil, nil, undo, errors.New("no QEMU command line after --")
	}
	l, err := parseListenFDs(func(k string) string { return getenv(p.environ, k) }, p.pid)
	if err != nil {
		return nil, nil, undo, err
	}
	argv, used, err := substitute(cfg.argv, l)
	if err != nil {
		return nil, nil, undo, err
	}
	for _, name := range cfg.fdNames {
		fd, err := l.fd(name)
		if err != nil {
			return nil, nil, undo, fmt.Errorf("--fd-name %s: %w", name, err)
		}
		used = append(used, fd)
	}
	for _, fd := range used {
		if err := p.inherit(fd); err != nil {
			return nil, nil, undo, err
		}
	}
	load, undo, err := loadState(cfg.state)
	if err != nil {
		return nil, nil, undo, err
	}
	argv = append(argv, load...)
	for _, kv := range p.environ {
		k, _, _ := strings.Cut(kv, "=")
		if k != notify.EnvListenFDs && k != notify.EnvListenNames && k != notify.EnvListenPID {
			env = append(env, kv)
		}
	}
	return argv, env, undo, nil
}

// runVM execs QEMU in vmctl's place: the same pid, so that whoever started
// vmctl supervises QEMU itself. It returns only on failure.
func runVM(cfg runConfig) error {
	argv, env, undo, err := prepareRun(cfg, process{os.Environ(), os.Getpid(), inheritFD})
	if err != nil {
		return err
	}
	path, err := exec.LookPath(argv[0])
	if err == nil {
		err = unix.Exec(path, argv, env)
		err = fmt.Errorf("execve(%q): %w", path, err)
	}
	undo()
	return err
}
