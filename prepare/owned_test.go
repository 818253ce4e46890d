package prepare

// Finding real sessions (held by a workload, by its orphaned daemon
// child, pushed, or in the fd store), holding them across a SIGTERM and
// the kexec, and refusing "luoinit.x" before any freeze are proven by the
// VM scenario TestOwnedSessions. These tests cover the logic around it.

import (
	"log"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/manifest"
)

func devNull(t *testing.T) *os.File {
	t.Helper()
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func ownedState() *state {
	s := newState(Options{Log: log.New(&strings.Builder{}, "", 0)})
	s.m = &manifest.Manifest{Workloads: []manifest.Workload{
		{Name: "vmm", Handoff: manifest.HandoffNone},
		{Name: "kv", Handoff: manifest.HandoffSocket, Sessions: manifest.SessionsRetrieve, FDs: []manifest.FD{{Name: "arena"}}},
	}}
	return s
}

func TestAdmit(t *testing.T) {
	s := ownedState()
	steps := []struct {
		wi   int
		name string
		via  manifest.SessionVia
		pid  int
		want string // error text; "" for none
	}{
		{0, "guest-ram", manifest.ViaProc, 40, ""},
		{0, "guest-ram", manifest.ViaProc, 41, ""}, // the daemon holds it too: recorded once
		{0, "guest-ram", manifest.ViaPush, 40, ""}, // and pushed: via becomes push
		{0, "luoinit.x", manifest.ViaProc, 42, `workload "vmm" holds LUO session "luoinit.x" (fd 3, pid 42): session "luoinit.x" is in luoinit's own namespace`},
		{0, "luoinit", manifest.ViaFDStore, 0, `"luoinit" is in luoinit's own namespace`},
		{1, "guest-ram", manifest.ViaProc, 50, `LUO session "guest-ram" is held by workload "vmm" (pid 40) and by workload "kv"`},
		{1, "arena", manifest.ViaProc, 50, `has the name of the workload's fd "arena"`},
		{1, "a/b", manifest.ViaProc, 50, `cannot be handed over by name`},
		{1, "kv-own", manifest.ViaProc, 50, ""},
	}
	for _, st := range steps {
		err := s.admit(st.wi, devNull(t), st.name, st.via, st.pid, "fd 3")
		switch {
		case st.want == "" && err != nil:
			t.Errorf("admit %q to %q: %v", st.name, s.m.Workloads[st.wi].Name, err)
		case st.want != "" && (err == nil || !strings.Contains(err.Error(), st.want)):
			t.Errorf("admit %q to %q = %v, want an error with %q", st.name, s.m.Workloads[st.wi].Name, err, st.want)
		case st.want != "" && !strings.Contains(err.Error(), "before anything is preserved or stopped") && strings.Contains(st.want, "namespace"):
			t.Errorf("refusal %q does not say that nothing was touched", err)
		}
	}
	s.recordOwned()
	want := [][]manifest.OwnedSession{
		{{Name: "guest-ram", Via: manifest.ViaPush}},
		{{Name: "kv-own", Via: manifest.ViaProc}},
	}
	for i, w := range s.m.Workloads {
		if !reflect.DeepEqual(w.OwnedSessions, want[i]) {
			t.Errorf("workload %q owns %v, want %v", w.Name, w.OwnedSessions, want[i])
		}
	}
	if err := s.m.Validate(); err != nil && strings.Contains(err.Error(), "owned") {
		t.Errorf("the recorded sessions do not validate: %v", err)
	}
	cancelled := s.cancel()
	if !strings.Contains(cancelled, "2 workload sessions let go") {
		t.Errorf("cancel says %q", cancelled)
	}
}

func TestPushKeepsFDs(t *testing.T) {
	s := ownedState()
	in := []handoff.File{{Name: "arena", File: devNull(t)}, {Name: "index", File: devNull(t)}}
	out, err := s.takePushed(1, 50, in)
	if err != nil || !reflect.DeepEqual(out, in) || len(s.owned) != 0 {
		t.Fatalf("takePushed of two non-session fds = %v, %v, owned %v", out, err, s.owned)
	}
}

func TestStoreLeavesOtherEntries(t *testing.T) {
	s := ownedState()
	a, b := devNull(t), devNull(t)
	s.o.FDStore = func(name string) []handoff.File {
		if name != "vmm" {
			t.Errorf("FDStore(%q)", name)
		}
		return []handoff.File{{Name: "a", File: a}, {Name: "b", File: b}}
	}
	if err := s.ownedFromStore(0); err != nil || len(s.owned) != 0 {
		t.Fatalf("ownedFromStore = %v, owned %v", err, s.owned)
	}
	for _, f := range []*os.File{a, b} {
		if f.Fd() != ^uintptr(0) {
			t.Errorf("the dup of a store entry that is no session was not closed")
		}
	}
}

func TestWorkloadProcesses(t *testing.T) {
	// 100 is the workload; 101 its child, 102 a grandchild; 200 another
	// workload; 1 is PID 1, whose children are not the workload's.
	tab := &procTable{
		ppid: map[int]int{1: 0, 100: 1, 101: 100, 102: 101, 200: 1, 201: 200},
		uid:  map[int]uint32{},
	}
	if got := tab.workload("kv", 0, 100); !reflect.DeepEqual(got, []int{100, 101, 102}) {
		t.Errorf("workload tree = %v", got)
	}
	if got := tab.workload("kv", 0, 0); len(got) != 0 {
		t.Errorf("no known pid and no environment marker: %v", got)
	}
	if got := tab.workload("kv", 0, 1); len(got) != 0 {
		t.Errorf("PID 1 taken as a workload: %v", got)
	}
	// /proc/PID/environ is what the process started with.
	if environHas(os.Getpid(), "NO_SUCH_VARIABLE_HERE=1") {
		t.Errorf("environHas invents entries")
	}
	if !environHas(os.Getpid(), "PATH="+os.Getenv("PATH")) {
		t.Errorf("environHas misses PATH of this process")
	}
}
