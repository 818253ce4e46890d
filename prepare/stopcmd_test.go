package prepare

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/luoinit/luoinit/manifest"
	"github.com/u-root/uio/ulog/ulogtest"
	"golang.org/x/sys/unix"
)

// The freeze runs every stop_command first, all at once; one that fails
// ends the freeze before any workload is signalled, and nothing reboots.
func TestStopCommands(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		fail    map[string]bool // workloads whose command fails
		notRun  bool            // "vm" has no process: its command is not run
		wantErr string
		ran     []string // workloads whose command ran
		reboot  bool
	}{
		{desc: "all succeed", ran: []string{"db", "vm"}, reboot: true},
		{desc: "one fails", fail: map[string]bool{"vm": true}, wantErr: `workload "vm": stop_command ["/usr/bin/vmctl" "save"] failed after`, ran: []string{"db", "vm"}},
		{desc: "both fail", fail: map[string]bool{"vm": true, "db": true}, wantErr: `workload "db": stop_command`, ran: []string{"db", "vm"}},
		{desc: "not running", notRun: true, ran: []string{"db"}, reboot: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var mu sync.Mutex
			var ran []string
			rebooted := false
			o := Options{
				Log:      ulogtest.Logger{TB: t},
				StateDir: t.TempDir(),
				RunCommand: func(w *manifest.Workload, timeout time.Duration) error {
					mu.Lock()
					ran = append(ran, w.Name)
					mu.Unlock()
					if timeout != 7*time.Second {
						t.Errorf("workload %q: timeout %v, want its stop_timeout", w.Name, timeout)
					}
					if tc.fail[w.Name] {
						return errors.New("exit status 1")
					}
					return nil
				},
				reboot: func() error { rebooted = true; return nil },
			}
			s := newState(o)
			s.m = &manifest.Manifest{Workloads: []manifest.Workload{
				{Name: "db", StopCommand: []string{"/usr/bin/dbctl", "flush"}, StopTimeout: manifest.Duration{Duration: 7 * time.Second}},
				{Name: "vm", StopCommand: []string{"/usr/bin/vmctl", "save"}, StopTimeout: manifest.Duration{Duration: 7 * time.Second}},
				{Name: "plain"},
			}}
			rec, err := os.CreateTemp(t.TempDir(), "record")
			if err != nil {
				t.Fatal(err)
			}
			s.record = rec
			procs := map[string]*exec.Cmd{}
			for _, name := range []string{"db", "vm", "plain"} {
				if name == "vm" && tc.notRun {
					continue
				}
				c := exec.Command("sleep", "60")
				if err := c.Start(); err != nil {
					t.Fatal(err)
				}
				procs[name] = c
				t.Cleanup(func() { c.Process.Kill(); c.Wait() })
				s.procs = append(s.procs, newProcess(name, c.Process.Pid, manifest.StopTerm, time.Second))
			}
			err = s.frozen()
			s.cancel()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("frozen: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "no workload was stopped")):
				t.Fatalf("frozen: %v, want an error with %q and that no workload was stopped", err, tc.wantErr)
			}
			mu.Lock()
			got := strings.Join(slices.Sorted(slices.Values(ran)), ",")
			mu.Unlock()
			if want := strings.Join(tc.ran, ","); got != want {
				t.Errorf("stop commands ran for %q, want %q", got, want)
			}
			if rebooted != tc.reboot {
				t.Errorf("rebooted %v, want %v", rebooted, tc.reboot)
			}
			// After a failed command every workload still runs; after
			// success each got SIGTERM.
			for name, c := range procs {
				alive := unix.Kill(c.Process.Pid, 0) == nil && !exited(c)
				if alive != (tc.wantErr != "") {
					t.Errorf("workload %q running %v after the freeze, want %v", name, alive, tc.wantErr != "")
				}
			}
		})
	}
}

// exited reports whether c has exited (a zombie counts), without reaping it.
func exited(c *exec.Cmd) bool {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_PID, c.Process.Pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	return err == nil && info.Signo != 0
}

// A config with a stop_command needs a way to run it.
func TestStopCommandNeedsRunner(t *testing.T) {
	cfg, err := manifest.ParseConfig([]byte("version = 1\n[[workload]]\nname = \"vm\"\nargv = [\"/bin/vm\"]\nhandoff = \"none\"\nstop_command = [\"/bin/save\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := newState(Options{Config: cfg, Log: ulogtest.Logger{TB: t}})
	if err := s.check(); err == nil || !strings.Contains(err.Error(), `workload "vm" has a stop_command, and this prepare has no way to run it`) {
		t.Fatalf("check: %v", err)
	}
}
