package prepare

import (
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/u-root/uio/ulog/ulogtest"

	"github.com/luoinit/luoinit/manifest"
)

func TestStopModes(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		script  string // prints "ready" once its signal dispositions are set
		mode    string
		timeout time.Duration
		ended   syscall.Signal // the signal it must end by; 0: it must not end
		state   byte
	}{
		{"term obeyed", "echo ready; exec sleep 30", "term", 2 * time.Second, syscall.SIGTERM, 0},
		{"term ignored, killed", "trap '' TERM; echo ready; while :; do sleep 0.05; done", "term", 300 * time.Millisecond, syscall.SIGKILL, 0},
		{"sigstop", "echo ready; while :; do sleep 0.05; done", "sigstop", 2 * time.Second, 0, 'T'},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			cmd := exec.Command("/bin/sh", "-c", tc.script)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			ready := make([]byte, 6)
			if _, err := io.ReadFull(out, ready); err != nil || string(ready) != "ready\n" {
				t.Fatalf("the script did not say ready: %q, %v", ready, err)
			}
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			defer func() { cmd.Process.Kill(); <-done }()
			p := newProcess("w", cmd.Process.Pid, manifest.StopMode(tc.mode), tc.timeout)
			defer p.close()
			if err := p.stop(ulogtest.Logger{TB: t}); err != nil {
				t.Fatal(err)
			}
			if tc.ended != 0 {
				select {
				case <-done:
				case <-time.After(5 * time.Second):
					t.Fatal("process still running after stop")
				}
				ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
				if !ws.Signaled() || ws.Signal() != tc.ended {
					t.Fatalf("ended with %v, want by %v", cmd.ProcessState, tc.ended)
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

// TestSparesRequester: the workload whose process tree runs the prepare
// command is stopped with SIGSTOP; the others keep their stop mode.
func TestSparesRequester(t *testing.T) {
	other := exec.Command("sleep", "5")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { other.Process.Kill(); other.Wait() }()
	for _, tc := range []struct {
		desc      string
		requester int
		want      []manifest.StopMode // this test's parent, this test, the sleep
	}{
		{"the requester is this test", os.Getpid(), []manifest.StopMode{manifest.StopSigstop, manifest.StopSigstop, manifest.StopTerm}},
		{"the requester is the sleep", other.Process.Pid, []manifest.StopMode{manifest.StopSigstop, manifest.StopSigstop, manifest.StopSigstop}},
		{"unknown requester", 0, []manifest.StopMode{manifest.StopTerm, manifest.StopTerm, manifest.StopTerm}},
	} {
		var logb strings.Builder
		s := newState(Options{Log: log.New(&logb, "", 0), Requester: tc.requester})
		for _, pid := range []int{os.Getppid(), os.Getpid(), other.Process.Pid} {
			s.procs = append(s.procs, &process{workload: fmt.Sprint(pid), pid: pid, mode: manifest.StopTerm, pidfd: -1})
		}
		s.sparesRequester()
		for i, p := range s.procs {
			if p.mode != tc.want[i] {
				t.Errorf("%s: process %d (pid %d) stops with %q, want %q\n%s", tc.desc, i, p.pid, p.mode, tc.want[i], logb.String())
			}
		}
	}
}
