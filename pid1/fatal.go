package pid1

import (
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/luoinit/luoinit/kcmdline"
	"github.com/u-root/uio/ulog"
	"golang.org/x/sys/unix"
)

// FatalParam is the kernel command-line parameter that names what Fatal
// does: luoinit.fatal=reboot (the default), halt, poweroff or shell.
const FatalParam = "luoinit.fatal"

// fatalEnv is where Fatal finds its inputs, for the tests.
type fatalEnv struct {
	cmdline func() string // the kernel command line
	shell   string        // the shell of luoinit.fatal=shell
	console string        // the terminal it runs on
	timeout time.Duration // Shutdown's, after the error
	once    *atomic.Bool
}

var realFatalEnv = fatalEnv{
	cmdline: func() string {
		b, _ := os.ReadFile("/proc/cmdline") // no /proc: the default action
		return string(b)
	},
	shell:   "/bin/sh",
	console: "/dev/console",
	timeout: 5 * time.Second,
	once:    new(atomic.Bool),
}

// Fatal ends PID 1 after an error it cannot recover from. It logs err, then
// does what luoinit.fatal= on the kernel command line says (FatalAction):
// reboot, halt or poweroff through Shutdown; or shell: /bin/sh as a child
// on /dev/console, its controlling terminal, and a reboot once it exits
// (a halt when there is no /bin/sh, so that the error stays on the screen).
// Workloads keep running while the shell does.
//
// Fatal never returns. A second call, from another goroutine, logs its
// error and blocks forever. Called in a process that is not PID 1, it logs
// err and exits with status 1.
func Fatal(log ulog.Logger, err error) {
	fatal(orDiscard(log), err, realFatalEnv, realShutdownSys)
}

func fatal(log ulog.Logger, err error, env fatalEnv, s shutdownSys) {
	if !env.once.CompareAndSwap(false, true) {
		logAt(log, levelCrit, "fatal, while handling an earlier fatal error: %v", err)
		s.forever()
		return
	}
	defer func() {
		// Last resort, for a panic on the way down: the default action
		// without the niceties.
		if p := recover(); p != nil {
			logAt(log, levelCrit, "panic while handling a fatal error: %v: rebooting at once", p)
			if s.getpid() == 1 {
				s.sync()
				_ = s.reboot(unix.LINUX_REBOOT_CMD_RESTART)
			}
			s.forever()
		}
	}()
	logAt(log, levelCrit, "fatal: %v", err)
	cmdline := env.cmdline()
	value, set := fatalParam(cmdline)
	a := FatalAction(cmdline)
	if set && value != a.String() {
		logAt(log, levelErr, "%s=%q is not reboot, halt, poweroff or shell: %s", FatalParam, value, a)
	}
	if pid := s.getpid(); pid != 1 {
		logAt(log, levelErr, "not PID 1 (pid %d): exiting with status 1 instead of the %s of %s", pid, a, FatalParam)
		s.exit(1)
		return
	}
	if a == ActionShell {
		a = fatalShell(log, env)
	}
	shutdown(log, nil, a, env.timeout, s)
}

// fatalShell runs the shell of luoinit.fatal=shell and returns what to do
// after it: reboot once it has exited, halt when there is none.
func fatalShell(log ulog.Logger, env fatalEnv) Action {
	if st, err := os.Stat(env.shell); err != nil || !st.Mode().IsRegular() {
		logAt(log, levelErr, "%s=shell: no shell at %s: halting", FatalParam, env.shell)
		return ActionHalt
	}
	attr := &ProcAttr{Env: []string{
		"PATH=" + defaultPath, "HOME=/", "TERM=" + orDefault(os.Getenv("TERM"), "linux"), "PS1=luoinit-fatal# ",
	}}
	if tty, err := os.OpenFile(env.console, os.O_RDWR|unix.O_NOCTTY, 0); err != nil {
		log.Printf("%s=shell: %v: the shell gets luoinit's own stdio", FatalParam, err)
		attr.Stdin, attr.Stdout, attr.Stderr = os.Stdin, os.Stdout, os.Stderr
	} else {
		defer tty.Close()
		attr.Stdin, attr.Stdout, attr.Stderr = tty, tty, tty
		_, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
		attr.Setctty = err == nil // a terminal: job control and ctrl-C work
	}
	r := theReaper(log, nil)
	p, err := r.Start([]string{env.shell}, attr)
	if err != nil && attr.Setctty {
		// TIOCSCTTY refused (the console is some session's already):
		// a shell without job control still serves.
		attr.Setctty = false
		p, err = r.Start([]string{env.shell}, attr)
	}
	if err != nil {
		logAt(log, levelErr, "%s=shell: %v: halting", FatalParam, err)
		return ActionHalt
	}
	log.Printf("%s=shell: %s (pid %d) on %s; the system reboots when it exits", FatalParam, env.shell, p.Pid, env.console)
	ws := p.Status()
	log.Printf("%s=shell: %s %s: rebooting", FatalParam, env.shell, describeStatus(ws))
	return ActionReboot
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// FatalAction is the Action that luoinit.fatal= names in a kernel command
// line: reboot (also when absent, empty or not understood), halt, poweroff
// or shell. As with the kernel's own parameters, the last one counts,
// double quotes may enclose the value or the whole parameter, and nothing
// after "--" is a kernel parameter.
func FatalAction(cmdline string) Action {
	v, _ := fatalParam(cmdline)
	if a, ok := parseAction(v); ok {
		return a
	}
	return ActionReboot
}

// fatalParam is the value of the last luoinit.fatal= in cmdline.
func fatalParam(cmdline string) (value string, set bool) {
	return kcmdline.Last(cmdline, FatalParam)
}

// PanicError is a recovered panic, with the stack of the goroutine that
// panicked.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("panic: %v\n\n%s", e.Value, strings.TrimRight(string(e.Stack), "\n"))
}

// Guard runs PID 1's main. An error it returns, or a panic it raises
// (logged with its stack), goes to Fatal; when it returns nil, Guard blocks
// forever, since PID 1 must not exit. Guard never returns.
//
// Guard sees only the panics of main's own goroutine: a goroutine of PID 1
// starts with `defer pid1.Recover(log)`. What no recover can catch (a
// runtime fatal error: out of memory, concurrent map writes, deadlock) ends
// the process, and the kernel panics: boot with panic=N to have it reboot.
func Guard(log ulog.Logger, main func() error) {
	log = orDiscard(log)
	if err := callGuarded(main); err != nil {
		Fatal(log, err)
	}
	Forever()
}

func callGuarded(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &PanicError{Value: p, Stack: debug.Stack()}
		}
	}()
	return fn()
}

// Recover, deferred first thing in a goroutine of PID 1, turns a panic of
// that goroutine into Fatal, like Guard does for main.
func Recover(log ulog.Logger) {
	if p := recover(); p != nil {
		Fatal(orDiscard(log), &PanicError{Value: p, Stack: debug.Stack()})
	}
}

// Forever blocks forever. Not with select{}: when no other goroutine can
// run, the runtime takes that for a deadlock and crashes ("all goroutines
// are asleep"); a goroutine asleep on a timer is not a deadlock.
func Forever() {
	for {
		time.Sleep(time.Hour)
	}
}
