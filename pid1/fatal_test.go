package pid1

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestFatalAction(t *testing.T) {
	tests := []struct {
		cmdline string
		want    Action
	}{
		{"", ActionReboot},
		{"console=ttyS0 quiet", ActionReboot},
		{"luoinit.fatal=reboot", ActionReboot},
		{"luoinit.fatal=halt", ActionHalt},
		{"luoinit.fatal=poweroff", ActionPoweroff},
		{"console=ttyS0 luoinit.fatal=shell quiet\n", ActionShell},
		{"luoinit.fatal=halt luoinit.fatal=shell", ActionShell}, // the last one counts
		{`luoinit.fatal="shell"`, ActionShell},
		{`"luoinit.fatal=halt"`, ActionHalt},
		{`init="/bin/x y" luoinit.fatal=halt`, ActionHalt},
		{`foo="a luoinit.fatal=halt b"`, ActionReboot}, // inside another's quotes
		{"luoinit.fatal=explode", ActionReboot},
		{"luoinit.fatal=HALT", ActionReboot},
		{"luoinit.fatal=", ActionReboot},
		{"luoinit.fatal", ActionReboot},
		{"xluoinit.fatal=halt luoinit.fatalx=halt", ActionReboot},
		{"quiet -- luoinit.fatal=halt", ActionReboot}, // init's argv, not a kernel parameter
		{"luoinit.fatal=halt\tquiet", ActionHalt},
	}
	for _, tc := range tests {
		if got := FatalAction(tc.cmdline); got != tc.want {
			t.Errorf("FatalAction(%q) = %s, want %s", tc.cmdline, got, tc.want)
		}
	}
}

func TestActionString(t *testing.T) {
	for a, want := range map[Action]string{
		ActionReboot: "reboot", ActionPoweroff: "poweroff", ActionHalt: "halt", ActionShell: "shell",
		0: "Action(0)", 9: "Action(9)",
	} {
		if got := a.String(); got != want {
			t.Errorf("Action(%d).String() = %q, want %q", int(a), got, want)
		}
		if p, ok := parseAction(want); ok != (a != 0 && a != 9) || (ok && p != a) {
			t.Errorf("parseAction(%q) = %v, %v", want, p, ok)
		}
	}
}

func TestCallGuarded(t *testing.T) {
	tests := []struct {
		name  string
		fn    func() error
		want  string // in the error; "" for none
		panic bool
	}{
		{"returns nil", func() error { return nil }, "", false},
		{"returns an error", func() error { return errors.New("no manifest") }, "no manifest", false},
		{"panics", func() error { panic("boom") }, "panic: boom\n\ngoroutine ", true},
		{"nil dereference", func() error { var p *int; return fmt.Errorf("%d", *p) }, "panic: runtime error: invalid memory address", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := callGuarded(tc.fn)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("error %v, want none", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			var pe *PanicError
			if errors.As(err, &pe) != tc.panic {
				t.Errorf("PanicError %v, want %v", errors.As(err, &pe), tc.panic)
			}
			if tc.panic && !strings.Contains(string(pe.Stack), "TestCallGuarded") {
				t.Errorf("stack lacks the test function:\n%s", pe.Stack)
			}
		})
	}
}

func testFatalEnv(cmdline string) fatalEnv {
	return fatalEnv{
		cmdline: func() string { return cmdline },
		shell:   "/bin/sh",
		console: "/dev/null",
		timeout: time.Millisecond,
		once:    new(atomic.Bool),
	}
}

func TestFatal(t *testing.T) {
	testReaper() // what fatal finds as the process's Reaper: never a second one
	tests := []struct {
		name    string
		env     fatalEnv
		pid     int
		calls   string
		logs    []string
		fatalOK bool // the once is spent already
	}{
		{
			name:  "not PID 1: exit 1",
			env:   testFatalEnv("luoinit.fatal=halt"),
			pid:   4242,
			calls: "exit(1)",
			logs:  []string{"fatal: manifest: bad", "not PID 1 (pid 4242): exiting with status 1 instead of the halt of luoinit.fatal"},
		},
		{
			name:  "halt",
			env:   testFatalEnv("luoinit.fatal=halt"),
			pid:   1,
			calls: "kill(-1,SIGTERM) kill(-1,SIGCONT) sync reboot(LINUX_REBOOT_CMD_HALT) forever",
			logs:  []string{"fatal: manifest: bad", "halt: sending SIGTERM"},
		},
		{
			name:  "a value not understood reboots, and says so",
			env:   testFatalEnv("luoinit.fatal=explode"),
			pid:   1,
			calls: "kill(-1,SIGTERM) kill(-1,SIGCONT) sync reboot(LINUX_REBOOT_CMD_RESTART) forever",
			logs:  []string{`luoinit.fatal="explode" is not reboot, halt, poweroff or shell: reboot`},
		},
		{
			name: "no shell: halt",
			env: func() fatalEnv {
				e := testFatalEnv("luoinit.fatal=shell")
				e.shell = "/nonexistent/sh"
				return e
			}(),
			pid:   1,
			calls: "kill(-1,SIGTERM) kill(-1,SIGCONT) sync reboot(LINUX_REBOOT_CMD_HALT) forever",
			logs:  []string{"luoinit.fatal=shell: no shell at /nonexistent/sh: halting"},
		},
		{
			name: "a panic on the way down: reboot at once",
			env: func() fatalEnv {
				e := testFatalEnv("")
				e.cmdline = func() string { panic("no cmdline") }
				return e
			}(),
			pid:   1,
			calls: "sync reboot(LINUX_REBOOT_CMD_RESTART) forever",
			logs:  []string{"panic while handling a fatal error: no cmdline: rebooting at once"},
		},
		{
			name:    "a second fatal blocks",
			env:     testFatalEnv("luoinit.fatal=halt"),
			pid:     1,
			fatalOK: true,
			calls:   "forever",
			logs:    []string{"fatal, while handling an earlier fatal error: manifest: bad"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeSys{pid: tc.pid}
			log := &recLogger{}
			tc.env.once.Store(tc.fatalOK)
			fatal(log, errors.New("manifest: bad"), tc.env, f.sys())
			if got := f.callList(); got != tc.calls {
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

// TestFatalAsInit runs Guard and Fatal as init of a PID namespace, where
// the reboot(2) at the end kills init with SIGHUP (restart) or SIGINT
// (halt).
func TestFatalAsInit(t *testing.T) {
	tests := []struct {
		helper string
		signal unix.Signal
		logs   []string
	}{
		{
			helper: "fatal-guard",
			signal: unix.SIGINT,
			logs:   []string{"luoinit: fatal: panic: boom", "luoinit: goroutine ", "luoinit: halt: reboot(LINUX_REBOOT_CMD_HALT)"},
		},
		{
			helper: "fatal-shell",
			signal: unix.SIGHUP,
			logs: []string{
				"luoinit.fatal=shell: /bin/sh (pid ", ") on /dev/null; the system reboots when it exits",
				"luoinit.fatal=shell: /bin/sh exited with status 0: rebooting",
				"reboot: reboot(LINUX_REBOOT_CMD_RESTART)",
			},
		},
		{
			helper: "fatal-noshell",
			signal: unix.SIGINT,
			logs:   []string{"no shell at /nonexistent/sh: halting", "halt: reboot(LINUX_REBOOT_CMD_HALT)"},
		},
		{
			helper: "fatal-unset",
			signal: unix.SIGHUP,
			logs:   []string{"luoinit: fatal: manifest unreadable", "reboot: reboot(LINUX_REBOOT_CMD_RESTART)"},
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
		})
	}
}

func setFatalEnv(cmdline, shell string) {
	realFatalEnv.cmdline = func() string { return cmdline }
	realFatalEnv.shell = shell
	realFatalEnv.console = "/dev/null"
	realFatalEnv.timeout = time.Second
}

func helperFatalGuard() int {
	if !asInit() {
		return 99
	}
	setFatalEnv("console=ttyS0 luoinit.fatal=halt quiet", "/bin/sh")
	Guard(NewLogger(false), func() error { panic("boom") })
	return 98
}

func helperFatalShell() int {
	if !asInit() {
		return 99
	}
	setFatalEnv("luoinit.fatal=shell", "/bin/sh") // on /dev/null: it reads EOF and exits
	Fatal(NewLogger(false), errors.New("manifest unreadable"))
	return 98
}

func helperFatalNoShell() int {
	if !asInit() {
		return 99
	}
	setFatalEnv("luoinit.fatal=shell", "/nonexistent/sh")
	Fatal(NewLogger(false), errors.New("manifest unreadable"))
	return 98
}

func helperFatalUnset() int {
	if !asInit() {
		return 99
	}
	setFatalEnv("quiet", "/bin/sh")
	Guard(NewLogger(false), func() error { return errors.New("manifest unreadable") })
	return 98
}
