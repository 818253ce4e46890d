package main

// `luoinit status --wait finished` in the new kernel of a real live update
// is covered by the VM scenario TestOwnedSessions.

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/luoinit/luoinit/status"
)

func statusDir(t *testing.T, st *status.Status) string {
	t.Helper()
	dir := t.TempDir()
	if st != nil {
		if err := status.Write(dir, st); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func exitCode(err error) int {
	var ee exitError
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		return 2
	}
	return 1
}

func TestStatusCommand(t *testing.T) {
	done := &status.Status{State: status.Finished, Boot: status.BootUpdated, Generation: 2, FromKernel: "7.2.13", ToKernel: "7.3.4",
		Blackout: 2400 * time.Millisecond, OldKernelBlackout: 600 * time.Millisecond, HandoffDone: time.Second,
		Workloads: []status.Workload{{Name: "vmm", Handoff: "none", Pid: 9,
			Sessions: []status.Session{{Name: "guest-ram", Via: "proc", Mode: "leave", Result: status.SessionTaken, Pid: 12}}}}}
	for _, tc := range []struct {
		desc string
		st   *status.Status // nil: no state file
		args []string
		code int
		out  []string
		err  []string
	}{
		{"text", done, nil, 0, []string{"state finished (boot updated, generation 2)", "updated from kernel 7.2.13 to 7.3.4", "last blackout 2.4s: old kernel 600ms", `session "guest-ram" (found via proc, leave): taken, pid 12`}, nil},
		{"json", done, []string{"--json"}, 0, []string{`"state": "finished"`, `"generation": 2`, `"result": "taken"`, `"from_kernel": "7.2.13"`, `"to_kernel": "7.3.4"`}, nil},
		{"state missing", &status.Status{State: status.Degraded, Boot: status.BootUpdated, Generation: 3, Reason: "no /dev/liveupdate: booted without liveupdate=on"}, nil, 0,
			[]string{"state degraded (boot updated, generation 3)", "the live update's state did not come back: no /dev/liveupdate: booted without liveupdate=on"}, nil},
		{"state missing, json", &status.Status{State: status.Degraded, Boot: status.BootUpdated, Reason: "no /dev/liveupdate"}, []string{"--json"}, 0, []string{`"reason": "no /dev/liveupdate"`}, nil},
		{"no state file", nil, nil, exitNoState, nil, []string{"no state file", "did not boot this system"}},
		{"wait reached", done, []string{"--wait", "finished"}, 0, []string{"state finished"}, nil},
		{"wait other end", done, []string{"--wait", "degraded"}, exitOtherEnd, nil, []string{"other final state"}},
		{"wait timeout", &status.Status{State: status.Restoring}, []string{"--wait", "finished", "--timeout", "50ms"}, exitTimeout, nil, []string{"finished not reached within 50ms (the state is restoring)"}},
		{"wait bad state", done, []string{"--wait", "done"}, 2, nil, nil},
		{"timeout without wait", done, []string{"--timeout", "1s"}, 2, nil, nil},
		{"argument", done, []string{"x"}, 2, nil, nil},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			o, e := capture(t)
			dir := statusDir(t, tc.st)
			err := run(append([]string{"status", "--dir", dir}, tc.args...))
			if got := exitCode(err); got != tc.code {
				t.Fatalf("exit %d (%v), want %d\nstdout %s\nstderr %s", got, err, tc.code, o, e)
			}
			for _, w := range tc.out {
				if !strings.Contains(o.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, o)
				}
			}
			for _, w := range tc.err {
				if !strings.Contains(e.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, e)
				}
			}
		})
	}
}

func TestStatusWaitWakes(t *testing.T) {
	o, _ := capture(t)
	dir := statusDir(t, &status.Status{State: status.Restoring, Boot: status.BootUpdated, Generation: 1})
	go func() {
		time.Sleep(100 * time.Millisecond)
		status.Write(dir, &status.Status{State: status.Finished, Boot: status.BootUpdated, Generation: 1})
	}()
	if err := run([]string{"status", "--dir", dir, "--wait", "finished", "--timeout", "5s", "--json"}); err != nil {
		t.Fatal(err)
	}
	var st status.Status
	if err := json.Unmarshal(o.Bytes(), &st); err != nil || st.State != status.Finished || st.Generation != 1 {
		t.Fatalf("--json after --wait: %+v, %v\n%s", st, err, o)
	}
}
