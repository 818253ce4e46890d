package prepare

import (
	"os/exec"
	"testing"
	"time"

	"github.com/u-root/uio/ulog/ulogtest"

	"github.com/luoinit/luoinit/manifest"
)

func TestStopModes(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		script  string
		mode    string
		timeout time.Duration
		exited  bool
		state   byte
	}{
		{"term obeyed", "sleep 30", "term", 2 * time.Second, true, 0},
		{"term ignored, killed", "trap '' TERM; while :; do sleep 0.05; done", "term", 300 * time.Millisecond, true, 0},
		{"sigstop", "while :; do sleep 0.05; done", "sigstop", 2 * time.Second, false, 'T'},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			cmd := exec.Command("/bin/sh", "-c", tc.script)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			defer func() { cmd.Process.Kill(); <-done }()
			time.Sleep(100 * time.Millisecond) // let the shell set its trap
			p := newProcess("w", cmd.Process.Pid, manifest.StopMode(tc.mode), tc.timeout)
			defer p.close()
			if err := p.stop(ulogtest.Logger{TB: t}); err != nil {
				t.Fatal(err)
			}
			if tc.exited {
				select {
				case <-done:
				case <-time.After(5 * time.Second):
					t.Fatal("process still running after stop")
				}
				return
			}
			st, err := procState(cmd.Process.Pid)
			if err != nil || st != tc.state {
				t.Fatalf("state %q (%v), want %q", st, err, tc.state)
			}
			if err := p.resume(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
			if st, _ := procState(cmd.Process.Pid); st == 'T' {
				t.Fatal("still stopped after resume")
			}
		})
	}
}
