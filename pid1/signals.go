package pid1

import (
	"os"
	"os/signal"

	"github.com/u-root/uio/ulog"
	"golang.org/x/sys/unix"
)

// signalActions are the signals that end PID 1, and how.
var signalActions = map[unix.Signal]Action{
	unix.SIGINT:  ActionReboot, // ctrl-alt-del, once CAD is off
	unix.SIGUSR2: ActionPoweroff,
	unix.SIGUSR1: ActionHalt,
}

// caughtSignals are the signals HandleSignals takes from the Go runtime:
// those that end a Go program by default, and those worth a log line.
//
// Why every one of these must be caught, and why first in main: the kernel
// never delivers to init a signal whose handler is SIG_DFL (bar SIGKILL and
// SIGSTOP from an ancestor PID namespace); that is what makes `kill 1`
// harmless to a C init. A Go program has almost no SIG_DFL signals: before
// main runs, the runtime installs its own handler for nearly every signal,
// and for a signal no channel is registered for, that handler acts itself.
// SIGHUP, SIGINT and SIGTERM make the program exit: it re-raises the signal
// with SIG_DFL, which the kernel ignores for init, and then exits with
// status 2. SIGQUIT, SIGABRT, SIGTRAP, SIGSTKFLT, SIGSYS, and SIGILL,
// SIGSEGV, SIGBUS and SIGFPE sent with kill(2), make it crash with a
// goroutine dump. A write to a broken pipe on fd 1 or 2 makes it exit. Any
// of these ends PID 1, and the kernel panics ("Attempted to kill init!").
// A signal registered with signal.Notify only goes to the channel, so
// HandleSignals registers all of them; a real fault (a nil dereference) is
// still a panic, which Guard turns into Fatal. Until the call, the runtime's
// handlers are in place: call it first in main, and keep package init
// functions short.
//
// Left out on purpose: SIGCHLD (the Reaper's), SIGURG (the runtime's
// goroutine preemption), SIGPROF (profiling); SIGCONT, SIGTSTP, SIGTTIN,
// SIGTTOU and SIGWINCH, which the runtime leaves at SIG_DFL or ignores; and
// realtime signals, which it catches and drops. Never signal.Ignore any
// signal in PID 1: SIG_IGN, unlike a handler, is inherited by every child
// across exec.
var caughtSignals = []os.Signal{
	// Exit (status 2) when not caught.
	unix.SIGHUP, unix.SIGINT, unix.SIGTERM,
	// Crash with a goroutine dump when not caught (and, for the fault
	// signals, when sent with kill(2) rather than raised by a fault).
	unix.SIGQUIT, unix.SIGABRT, unix.SIGTRAP, unix.SIGSTKFLT, unix.SIGSYS,
	unix.SIGILL, unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE,
	// Exit when a write to fd 1 or 2 hits a broken pipe, when not caught.
	unix.SIGPIPE,
	// Caught and dropped by the runtime; caught here for the meaning or
	// the log line.
	unix.SIGUSR1, unix.SIGUSR2, unix.SIGALRM, unix.SIGVTALRM,
	unix.SIGXCPU, unix.SIGXFSZ, unix.SIGIO, unix.SIGPWR,
}

// HandleSignals gives PID 1's signals their meaning:
//
//	SIGINT            reboot (ctrl-alt-del)
//	SIGUSR2           poweroff
//	SIGUSR1           halt
//	SIGTERM, SIGHUP   ignored and logged: a stray `kill 1` must not end the system
//	SIGPIPE           ignored: the write that caused it fails with EPIPE
//	the rest of caughtSignals: ignored and logged
//
// Call it first in main: until then the Go runtime's handlers end the
// program on most of these signals (see caughtSignals).
//
// act is called with the Action, on a goroutine of its own, once: the first
// of SIGINT, SIGUSR2 and SIGUSR1 wins and later ones are logged and
// ignored. act may never return (Shutdown does not); signals are still
// caught, and never fatal, meanwhile.
//
// As PID 1, HandleSignals also turns ctrl-alt-del into SIGINT instead of an
// immediate reboot without sync (reboot(2) LINUX_REBOOT_CMD_CAD_OFF).
func HandleSignals(log ulog.Logger, act func(Action)) {
	log = orDiscard(log)
	handleSignals(log, act)
	if os.Getpid() == 1 {
		// EINVAL: init of a PID namespace other than the first, where
		// ctrl-alt-del means nothing.
		if err := unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF); err != nil && err != unix.EINVAL {
			log.Printf("ctrl-alt-del will reboot at once, without sync: %v",
				syscallErr(err, "reboot(LINUX_REBOOT_CMD_CAD_OFF)"))
		}
	}
}

// handleSignals is HandleSignals without the process-wide side effect, and
// with a stop for the tests.
func handleSignals(log ulog.Logger, act func(Action)) (stop func()) {
	c := make(chan os.Signal, 16)
	signal.Notify(c, caughtSignals...)
	done := make(chan struct{})
	go func() {
		defer Recover(log)
		var started Action
		for {
			var sig unix.Signal
			select {
			case <-done:
				return
			case s := <-c:
				sig = s.(unix.Signal)
			}
			a, ok := signalActions[sig]
			switch {
			case ok && started == 0:
				started = a
				log.Printf("received %s: %s", signalName(sig), a)
				if act == nil {
					log.Printf("no action set for %s: ignored", a)
					continue
				}
				go func() {
					defer Recover(log)
					act(a)
				}()
			case ok:
				log.Printf("received %s: ignored, %s already under way", signalName(sig), started)
			case sig == unix.SIGPIPE:
			default:
				log.Printf("received %s: ignored (PID 1 ends only on SIGINT reboot, SIGUSR2 poweroff, SIGUSR1 halt)", signalName(sig))
			}
		}
	}()
	return func() {
		signal.Stop(c)
		close(done)
	}
}
