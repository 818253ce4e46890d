package pid1

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestHandleSignals(t *testing.T) {
	tests := []struct {
		name    string
		send    []unix.Signal
		actions []Action // what act is called with, in order
		logs    []string
	}{
		{
			name: "SIGTERM and SIGHUP are ignored and logged",
			send: []unix.Signal{unix.SIGTERM, unix.SIGHUP},
			logs: []string{"received SIGTERM: ignored", "received SIGHUP: ignored"},
		},
		{
			name: "SIGQUIT does not dump and exit",
			send: []unix.Signal{unix.SIGQUIT},
			logs: []string{"received SIGQUIT: ignored"},
		},
		{
			name: "SIGPIPE is ignored without a word",
			send: []unix.Signal{unix.SIGPIPE},
		},
		{
			name:    "SIGUSR1 halts",
			send:    []unix.Signal{unix.SIGUSR1},
			actions: []Action{ActionHalt},
			logs:    []string{"received SIGUSR1: halt"},
		},
		{
			name:    "SIGUSR2 powers off",
			send:    []unix.Signal{unix.SIGUSR2},
			actions: []Action{ActionPoweroff},
			logs:    []string{"received SIGUSR2: poweroff"},
		},
		{
			name:    "SIGINT reboots, and the first action wins",
			send:    []unix.Signal{unix.SIGINT, unix.SIGUSR1},
			actions: []Action{ActionReboot},
			logs:    []string{"received SIGINT: reboot", "received SIGUSR1: ignored, reboot already under way"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := &recLogger{}
			acts := make(chan Action, 4)
			stop := handleSignals(log, func(a Action) { acts <- a })
			defer stop()
			logged := 0
			for _, sig := range tc.send {
				if err := unix.Kill(os.Getpid(), sig); err != nil {
					t.Fatal(err)
				}
				if sig == unix.SIGPIPE {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				// One at a time, so that the order is the sending order.
				logged++
				if !waitFor(2*time.Second, func() bool { return log.n() == logged }) {
					t.Fatalf("%s not handled:\n%s", signalName(sig), log.text())
				}
			}
			for _, want := range tc.actions {
				select {
				case got := <-acts:
					if got != want {
						t.Errorf("act(%s), want act(%s)", got, want)
					}
				case <-time.After(2 * time.Second):
					t.Fatalf("act(%s) not called", want)
				}
			}
			for _, want := range tc.logs {
				if !waitFor(2*time.Second, func() bool { return log.count(want) == 1 }) {
					t.Errorf("log lacks %q once:\n%s", want, log.text())
				}
			}
			time.Sleep(50 * time.Millisecond)
			select {
			case a := <-acts:
				t.Errorf("act(%s) called more than wanted", a)
			default:
			}
			if len(tc.logs) == 0 && log.text() != "" {
				t.Errorf("logged %q, want nothing", log.text())
			}
		})
	}
}

// TestSignalsAsInit sends signals to a helper that is init of a PID
// namespace and has called HandleSignals: it must outlive every signal but
// the three that mean something.
func TestSignalsAsInit(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	p, stderr := startHelper(t, "signals", true, pw)
	pw.Close()
	lines := linesOf(pr)
	expectLine(t, lines, "ready", 10*time.Second)

	for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGPIPE, unix.SIGALRM, unix.SIGSEGV, unix.SIGABRT} {
		if err := p.Signal(sig); err != nil {
			t.Fatalf("%s: %v", signalName(sig), err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	select {
	case <-p.Done():
		t.Fatalf("init %s after ignorable signals:\n%s", describeStatus(p.Status()), readAll(t, stderr))
	default:
	}
	if err := p.Signal(unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	expectLine(t, lines, "halt", 5*time.Second)
	if ws := waitProc(t, p, 5*time.Second); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("init %s, want exit 0", describeStatus(ws))
	}
	log := readAll(t, stderr)
	for _, want := range []string{"received SIGTERM: ignored", "received SIGHUP: ignored", "received SIGQUIT: ignored", "received SIGSEGV: ignored", "received SIGUSR1: halt"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

func helperSignals() int {
	if !asInit() {
		return 99
	}
	log := NewLogger(false)
	HandleSignals(log, func(a Action) {
		fmt.Println(a)
		os.Exit(0)
	})
	fmt.Println("ready")
	Forever()
	return 0
}

// TestUncaughtSIGTERMEndsGoInit is the hazard HandleSignals exists for: a
// Go init that has not registered for SIGTERM exits on it (status 2), in
// spite of the kernel's protection of init, since the Go runtime installed
// a handler of its own.
func TestUncaughtSIGTERMEndsGoInit(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	p, _ := startHelper(t, "nosignals", true, pw)
	pw.Close()
	expectLine(t, linesOf(pr), "ready", 10*time.Second)
	if err := p.Signal(unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if ws := waitProc(t, p, 5*time.Second); !ws.Exited() || ws.ExitStatus() != 2 {
		t.Errorf("Go init without HandleSignals %s on SIGTERM, want exit status 2", describeStatus(ws))
	}
}

func helperNoSignals() int {
	if !asInit() {
		return 99
	}
	fmt.Println("ready")
	Forever()
	return 0
}
