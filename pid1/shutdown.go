package pid1

import (
	"os"
	"sync/atomic"
	"time"

	"github.com/u-root/uio/ulog"
	"golang.org/x/sys/unix"
)

// killWait is how long Shutdown waits for the processes it sent SIGKILL:
// one in uninterruptible sleep does not go, and must not hold up the
// reboot.
const killWait = 2 * time.Second

// Shutdown ends the system: SIGTERM (and SIGCONT, for the stopped) to every
// process, up to timeout for them to exit, SIGKILL to those left, sync(2),
// then reboot(2) with LINUX_REBOOT_CMD_RESTART, _POWER_OFF or _HALT for
// ActionReboot, ActionPoweroff or ActionHalt (anything else reboots).
//
// It never returns. When reboot(2) fails, it logs that and blocks forever:
// PID 1 exiting would panic the kernel. A second call, from another
// goroutine, blocks forever too. Processes are waited for through r (nil:
// the process's Reaper), which reaps them as they go, orphans included;
// "gone" means no process left in /proc but PID 1 and kernel threads.
//
// Called in a process that is not PID 1 (say, luoinit run as a command by
// mistake), it sends nothing and reboots nothing: it logs that and exits
// with status 1.
func Shutdown(log ulog.Logger, r *Reaper, a Action, timeout time.Duration) {
	shutdown(orDiscard(log), r, a, timeout, realShutdownSys)
}

// shutdownSys is what shutdown does to the system, for the tests.
type shutdownSys struct {
	once     *atomic.Bool
	getpid   func() int
	kill     func(pid int, sig unix.Signal) error
	left     func() (ps []procStat, known bool) // the processes still there
	sync     func()
	reboot   func(cmd int) error
	exit     func(code int)
	forever  func()
	killWait time.Duration
}

var realShutdownSys = shutdownSys{
	once:   new(atomic.Bool),
	getpid: os.Getpid,
	kill:   unix.Kill,
	left: func() ([]procStat, bool) {
		ps, err := userProcesses("/proc", os.Getpid())
		if err == nil {
			return ps, true
		}
		// No /proc: kill(-1, 0) finds no process to signal only when none
		// is left, but kernel threads count, so as the kernel's own init
		// this waits the whole timeout.
		return nil, unix.Kill(-1, 0) == unix.ESRCH
	},
	sync:     unix.Sync,
	reboot:   unix.Reboot,
	exit:     os.Exit,
	forever:  Forever,
	killWait: killWait,
}

var rebootCmds = map[Action]struct {
	cmd  int
	name string
}{
	ActionReboot:   {unix.LINUX_REBOOT_CMD_RESTART, "LINUX_REBOOT_CMD_RESTART"},
	ActionPoweroff: {unix.LINUX_REBOOT_CMD_POWER_OFF, "LINUX_REBOOT_CMD_POWER_OFF"},
	ActionHalt:     {unix.LINUX_REBOOT_CMD_HALT, "LINUX_REBOOT_CMD_HALT"},
}

func shutdown(log ulog.Logger, r *Reaper, a Action, timeout time.Duration, s shutdownSys) {
	if !s.once.CompareAndSwap(false, true) {
		log.Printf("%s: a shutdown is already under way: waiting for it", a)
		s.forever()
		return
	}
	if pid := s.getpid(); pid != 1 {
		logAt(log, levelErr, "%s: not PID 1 (pid %d): exiting with status 1, without signalling every process or calling reboot(2)", a, pid)
		s.exit(1)
		return
	}
	rc, ok := rebootCmds[a]
	if !ok {
		log.Printf("%s is not a way to shut down: rebooting", a)
		a, rc = ActionReboot, rebootCmds[ActionReboot]
	}
	r = theReaper(log, r)

	signalAll := func(sig unix.Signal) {
		// ESRCH: nothing left to signal.
		if err := s.kill(-1, sig); err != nil && err != unix.ESRCH {
			log.Printf("%s: %v", a, syscallErr(err, "kill(-1, %s)", signalName(sig)))
		}
	}
	// waitGone waits up to d for every process to be gone, waking up on
	// each reaping, and returns those left.
	waitGone := func(d time.Duration) ([]procStat, bool) {
		deadline := time.Now().Add(d)
		for {
			wake := r.changes() // before looking, so no reaping is missed
			ps, known := s.left()
			if known && len(ps) == 0 {
				return nil, true
			}
			rest := time.Until(deadline)
			if rest <= 0 {
				return ps, false
			}
			select {
			case <-wake:
			case <-time.After(min(rest, 100*time.Millisecond)):
			}
		}
	}

	log.Printf("%s: sending SIGTERM to every process", a)
	signalAll(unix.SIGTERM)
	signalAll(unix.SIGCONT)
	if ps, gone := waitGone(timeout); !gone {
		log.Printf("%s: still running after %v: %s: sending SIGKILL", a, timeout, describeProcs(ps, 10))
		signalAll(unix.SIGKILL)
		if ps, gone := waitGone(s.killWait); !gone {
			log.Printf("%s: still there after SIGKILL (uninterruptible sleep?), going on without them: %s", a, describeProcs(ps, 10))
		}
	}
	log.Printf("%s: syncing filesystems", a)
	s.sync()
	log.Printf("%s: reboot(%s)", a, rc.name)
	Flush(log)
	err := s.reboot(rc.cmd)
	logAt(log, levelCrit, "%s failed: %v: PID 1 stays up and does nothing more", a, syscallErr(err, "reboot(%s)", rc.name))
	s.forever()
}
