package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/pid1"
	"golang.org/x/sys/unix"
)

// runStopCommand needs the process's one Reaper, which would take the
// statuses of other tests' children: the test runs its cases in a child
// process of the test binary, and passes if that child passed.
func TestRunStopCommand(t *testing.T) {
	if os.Getenv("LUOINIT_TEST_STOPCMD") != "" {
		runStopCommandCases(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestRunStopCommand$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "LUOINIT_TEST_STOPCMD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestRunStopCommand") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func runStopCommandCases(t *testing.T) {
	s := starter{pid1.NewReaper(nil)}
	dir := t.TempDir()
	for _, tc := range []struct {
		desc    string
		argv    []string
		timeout time.Duration
		wantErr string // "" for success
	}{
		{desc: "exit 0", argv: []string{"/bin/sh", "-c", `[ "$LUOINIT_WORKLOAD" = vm ] && [ "$SAVE_TO" = /x ] && [ "$(pwd)" = ` + dir + ` ]`}, timeout: 10 * time.Second},
		{desc: "exit 3", argv: []string{"/bin/sh", "-c", "exit 3"}, timeout: 10 * time.Second, wantErr: "exited with status 3"},
		{desc: "signal", argv: []string{"/bin/sh", "-c", "kill -TERM $$"}, timeout: 10 * time.Second, wantErr: "SIGTERM"},
		{desc: "not found", argv: []string{"/nonexistent/save"}, timeout: 10 * time.Second, wantErr: "/nonexistent/save"},
		// The timeout kills the process group: the command and what it started.
		{desc: "timeout", argv: []string{"/bin/sh", "-c", "sleep 30 & echo $! > " + dir + "/child; wait"}, timeout: 300 * time.Millisecond, wantErr: "still ran after 300ms (stop_timeout): killed"},
	} {
		w := &manifest.Workload{Name: "vm", StopCommand: tc.argv, Env: []string{"SAVE_TO=/x"}, Dir: dir, UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
		err := s.runStopCommand(w, tc.timeout)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.desc, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: %v, want an error with %q", tc.desc, err, tc.wantErr)
		}
	}
	b, err := os.ReadFile(dir + "/child")
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(5 * time.Second)
	for unix.Kill(pid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if unix.Kill(pid, 0) == nil {
		t.Errorf("the command's child %d outlived the timeout", pid)
	}
}
