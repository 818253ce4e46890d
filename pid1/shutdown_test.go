package pid1

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/u-root/uio/ulog"
	"golang.org/x/sys/unix"
)

// fakeSys records what shutdown and fatal do to the system.
type fakeSys struct {
	mu        sync.Mutex
	calls     []string
	pid       int
	left      func(calls string) []procStat // by the calls so far
	rebootErr error
}

func (f *fakeSys) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeSys) callList() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, " ")
}

func (f *fakeSys) sys() shutdownSys {
	return shutdownSys{
		once:   new(atomic.Bool),
		getpid: func() int { return f.pid },
		kill: func(pid int, sig unix.Signal) error {
			f.record(fmt.Sprintf("kill(%d,%s)", pid, signalName(sig)))
			return nil
		},
		left: func() ([]procStat, bool) {
			if f.left == nil {
				return nil, true
			}
			return f.left(f.callList()), true
		},
		sync: func() { f.record("sync") },
		reboot: func(cmd int) error {
			for _, rc := range rebootCmds {
				if rc.cmd == cmd {
					f.record("reboot(" + rc.name + ")")
				}
			}
			return f.rebootErr
		},
		exit:     func(code int) { f.record(fmt.Sprintf("exit(%d)", code)) },
		forever:  func() { f.record("forever") },
		killWait: 50 * time.Millisecond,
	}
}

// idleReaper is a Reaper without its loop, for shutdown to wait on.
func idleReaper() *Reaper {
	return &Reaper{log: ulog.Null, procs: map[int]*Proc{}, changed: make(chan struct{})}
}

func TestShutdown(t *testing.T) {
	kv := []procStat{{Pid: 40, Comm: "kv"}}
	tests := []struct {
		name  string
		f     *fakeSys
		a     Action
		calls string
		logs  []string
	}{
		{
			name:  "everything exits on SIGTERM",
			f:     &fakeSys{pid: 1},
			a:     ActionPoweroff,
			calls: "kill(-1,SIGTERM) kill(-1,SIGCONT) sync reboot(LINUX_REBOOT_CMD_POWER_OFF) forever",
			logs:  []string{"poweroff: sending SIGTERM to every process", "poweroff: syncing filesystems", "poweroff: reboot(LINUX_REBOOT_CMD_POWER_OFF)"},
		},
		{
			name: "one ignores SIGTERM",
			f: &fakeSys{pid: 1, left: func(calls string) []procStat {
				if strings.Contains(calls, "SIGKILL") {
					return nil
				}
				return kv
			}},
			a:     ActionReboot,
			calls: "kill(-1,SIGTERM) kill(-1,SIGCONT) kill(-1,SIGKILL) sync reboot(LINUX_REBOOT_CMD_RESTART) forever",
			logs:  []string{"reboot: still running after 50ms: 40 (kv): sending SIGKILL"},
		},
		{
			name:  "one outlives SIGKILL, and the reboot goes on",
			f:     &fakeSys{pid: 1, left: func(string) []procStat { return kv }},
			a:     ActionHalt,
			calls: "kill(-1,SIGTERM) kill(-1,SIGCONT) kill(-1,SIGKILL) sync reboot(LINUX_REBOOT_CMD_HALT) forever",
			logs:  []string{"halt: still there after SIGKILL (uninterruptible sleep?), going on without them: 40 (kv)"},
		},
		{
			name:  "reboot(2) fails: PID 1 stays",
			f:     &fakeSys{pid: 1, rebootErr: unix.EPERM},
			a:     ActionHalt,
			calls: "kill(-1,SIGTERM) kill(-1,SIGCONT) sync reboot(LINUX_REBOOT_CMD_HALT) forever",
			logs:  []string{"halt failed: reboot(LINUX_REBOOT_CMD_HALT) = EPERM (operation not permitted): PID 1 stays up"},
		},
		{
			name:  "not PID 1: nothing signalled, nothing rebooted",
			f:     &fakeSys{pid: 4242},
			a:     ActionReboot,
			calls: "exit(1)",
			logs:  []string{"reboot: not PID 1 (pid 4242): exiting with status 1"},
		},
		{
			name:  "shell is not a way to shut down",
			f:     &fakeSys{pid: 1},
			a:     ActionShell,
			calls: "kill(-1,SIGTERM) kill(-1,SIGCONT) sync reboot(LINUX_REBOOT_CMD_RESTART) forever",
			logs:  []string{"shell is not a way to shut down: rebooting"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := &recLogger{}
			shutdown(log, idleReaper(), tc.a, 50*time.Millisecond, tc.f.sys())
			if got := tc.f.callList(); got != tc.calls {
				t.Errorf("calls\n %s\nwant\n %s", got, tc.calls)
			}
			for _, want := range tc.logs {
				if log.count(want) != 1 {
					t.Errorf("log lacks %q once:\n%s", want, log.text())
				}
			}
		})
	}
}

func TestShutdownOnce(t *testing.T) {
	f := &fakeSys{pid: 1}
	s := f.sys()
	log := &recLogger{}
	shutdown(log, idleReaper(), ActionReboot, time.Millisecond, s)
	first := f.callList()
	shutdown(log, idleReaper(), ActionHalt, time.Millisecond, s)
	if got := f.callList(); got != first+" forever" {
		t.Errorf("second shutdown did %q, want only to block", strings.TrimPrefix(got, first))
	}
	if log.count("halt: a shutdown is already under way") != 1 {
		t.Errorf("second shutdown not logged:\n%s", log.text())
	}
}

// TestShutdownAsInit runs Shutdown as init of a PID namespace, with
// children, an orphan and a child that ignores SIGTERM. reboot(2) there
// ends the namespace: its init is killed by SIGHUP for a restart and by
// SIGINT for a power-off or halt.
func TestShutdownAsInit(t *testing.T) {
	tests := []struct {
		helper  string
		signal  unix.Signal
		logs    []string
		notLogs []string
	}{
		{
			helper: "shutdown-all",
			signal: unix.SIGHUP,
			logs: []string{
				"reboot: sending SIGTERM to every process",
				"not started by luoinit: killed by SIGTERM", // the orphan
				"reboot: reboot(LINUX_REBOOT_CMD_RESTART)",
			},
			notLogs: []string{"SIGKILL"},
		},
		{
			helper: "shutdown",
			signal: unix.SIGINT,
			logs: []string{
				"poweroff: sending SIGTERM to every process",
				"poweroff: still running after 1s: ",
				" (sh)",
				": sending SIGKILL",
				"poweroff: syncing filesystems",
				"poweroff: reboot(LINUX_REBOOT_CMD_POWER_OFF)",
			},
			notLogs: []string{"still there after SIGKILL"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.helper, func(t *testing.T) {
			p, stderr := startHelper(t, tc.helper, true, nil)
			ws := waitProc(t, p, 30*time.Second)
			log := readAll(t, stderr)
			if !ws.Signaled() || ws.Signal() != tc.signal {
				t.Fatalf("init %s, want killed by %s:\n%s", describeStatus(ws), signalName(tc.signal), log)
			}
			for _, want := range tc.logs {
				if !strings.Contains(log, want) {
					t.Errorf("log lacks %q:\n%s", want, log)
				}
			}
			for _, bad := range tc.notLogs {
				if strings.Contains(log, bad) {
					t.Errorf("log has %q:\n%s", bad, log)
				}
			}
		})
	}
}

// startChildren starts what the shutdown helpers shut down: a sleep, and
// an orphan left by a shell. It returns false on failure.
func startChildren(log ulog.Logger, r *Reaper) bool {
	if _, err := r.Start([]string{"sleep", "1000"}, nil); err != nil {
		log.Printf("%v", err)
		return false
	}
	p, err := r.Start([]string{"/bin/sh", "-c", "sleep 1000 & exit 0"}, nil)
	if err != nil {
		log.Printf("%v", err)
		return false
	}
	p.Wait()
	return true
}

func helperShutdownAll() int {
	if !asInit() {
		return 99
	}
	log := NewLogger(false)
	r := NewReaper(log)
	if !startChildren(log, r) {
		return 1
	}
	Shutdown(log, r, ActionReboot, 10*time.Second)
	return 98
}

func helperShutdown() int {
	if !asInit() {
		return 99
	}
	log := NewLogger(false)
	r := NewReaper(log)
	if !startChildren(log, r) {
		return 1
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		log.Printf("%v", err)
		return 1
	}
	_, err = r.Start([]string{"/bin/sh", "-c", `trap "" TERM; echo ready; while :; do sleep 0.1; done`}, &ProcAttr{Stdout: pw})
	pw.Close()
	if err != nil {
		log.Printf("%v", err)
		return 1
	}
	if line, _ := bufio.NewReader(pr).ReadString('\n'); line != "ready\n" {
		log.Printf("stubborn child said %q", line)
		return 1
	}
	Shutdown(log, r, ActionPoweroff, time.Second)
	return 98
}
