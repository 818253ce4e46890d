package restore

// The kernel side (a session created by a workload, held by prepare
// across its SIGTERM, retrieved by its owner or by PID 1 after the kexec)
// is proven by the VM scenario TestOwnedSessions.

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/luoinit/luoinit/carry"
	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/status"
	"github.com/u-root/uio/ulog"
)

func ownedManifest(t *testing.T) []byte {
	t.Helper()
	m := &manifest.Manifest{Version: 1, Generation: 2, KernelRelease: "7.3.4", Workloads: []manifest.Workload{
		{Name: "vmm", Argv: []string{"/bin/vmm"}, Handoff: manifest.HandoffNone,
			OwnedSessions: []manifest.OwnedSession{{Name: "guest-ram", Via: manifest.ViaProc}, {Name: "scratch", Via: manifest.ViaProc}}},
		{Name: "kv", Argv: []string{"/bin/kv"}, Handoff: manifest.HandoffSocket, FDSession: "luoinit.kv", Sessions: manifest.SessionsRetrieve,
			FDs:           []manifest.FD{{Name: "arena", Token: 1, Kind: "memfd"}},
			OwnedSessions: []manifest.OwnedSession{{Name: "kv-own", Via: manifest.ViaPush}}},
		{Name: "plain", Argv: []string{"/bin/plain"}, Handoff: manifest.HandoffSocket, FDSession: "luoinit.plain"},
	}}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// handoffTimeout is long enough for an in-process handoff of two fds on a
// loaded machine, and is what the silent workload "plain" runs into.
const handoffTimeout = time.Second

func TestBootOwnedSessions(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		device  fakeDevice
		state   status.State
		results map[string]string // session -> result
	}{
		{"all there", fakeDevice{
			"luoinit.kv": {name: "luoinit.kv", files: map[uint64]string{1: "arena"}},
			"kv-own":     {name: "kv-own"},
		}, status.Finished, map[string]string{"guest-ram": status.SessionTaken, "scratch": status.SessionNotSeen, "kv-own": status.SessionDelivered}},
		{"retrieved session lost", fakeDevice{
			"luoinit.kv": {name: "luoinit.kv", files: map[uint64]string{1: "arena"}},
		}, status.Degraded, map[string]string{"guest-ram": status.SessionTaken, "scratch": status.SessionNotSeen, "kv-own": status.SessionLost}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			tc.device[carry.Session] = own(ownedManifest(t), true)
			// "guest-ram" is held by a process, "scratch" by none.
			looks := 0
			var lmu sync.Mutex
			lookHeld = func() map[string]int {
				lmu.Lock()
				defer lmu.Unlock()
				looks++
				return map[string]int{"guest-ram": 77, "luoinit.kv": 1}
			}
			defer func() { lookHeld = heldSessions }()
			var mu sync.Mutex
			var log strings.Builder
			received := map[string][]string{}
			st := &inProcess{behave: func(name string, c *handoff.Conn) int {
				if name == "plain" {
					time.Sleep(3 * handoffTimeout) // never speaks: its handoff times out
					return 0
				}
				files, err := pull(name, c)
				mu.Lock()
				defer mu.Unlock()
				for _, f := range files {
					received[name] = append(received[name], f.Name)
					f.File.Close()
				}
				if err != nil {
					return 1
				}
				return 0
			}}
			t0 := time.Now()
			rep, err := Start(BootOptions{
				Cmdline: "luoinit.update=1", Config: filepath.Join(dir, "none.toml"), StateDir: filepath.Join(dir, "run"),
				ManifestCopy: filepath.Join(dir, "run", "manifest.toml"),
				OpenDevice:   func() (Device, error) { return tc.device, nil },
				Start:        st,
				Log:          printf(func(f string, a ...any) { mu.Lock(); fmt.Fprintf(&log, f+"\n", a...); mu.Unlock() }),
				Supervisor:   Options{HandoffTimeout: handoffTimeout},
				ApplyNetwork: func(manifest.Network, ulog.Logger) (int, []error, time.Duration) {
					return 0, nil, 0
				},
			}).Run()
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			logged := log.String()
			mu.Unlock()
			if rep.State != tc.state {
				t.Fatalf("state %s, want %s\n%s", rep.State, tc.state, logged)
			}
			if d := time.Since(t0); d < handoffTimeout {
				t.Errorf("Boot returned after %v, before the handoff timeout: an untaken session was not waited for", d)
			}
			st2, err := status.Read(filepath.Join(dir, "run"))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, w := range st2.Workloads {
				for _, s := range w.Sessions {
					got[s.Name] = s.Result
				}
				if w.Name == "kv" && w.FDsDelivered != 1 {
					t.Errorf("kv: %d fds delivered, want 1 (its session is counted as a session)", w.FDsDelivered)
				}
				if w.Name == "vmm" && (w.Ready == 0 || w.Error != "") {
					t.Errorf("vmm (handoff none): ready %v error %q; want back in service at start", w.Ready, w.Error)
				}
			}
			for name, want := range tc.results {
				if got[name] != want {
					t.Errorf("session %q: %q, want %q\n%s", name, got[name], want, logged)
				}
			}
			wantKV := "arena"
			if tc.results["kv-own"] == status.SessionDelivered {
				wantKV = "arena kv-own"
			}
			mu.Lock()
			if strings.Join(received["kv"], " ") != wantKV {
				t.Errorf("kv received %v, want %s", received["kv"], wantKV)
			}
			mu.Unlock()
			for _, want := range []string{`workload "vmm": its session "scratch" was not seen taken`, `workload "vmm": its session "guest-ram" is held by pid 77`} {
				if !strings.Contains(logged, want) {
					t.Errorf("log lacks %q:\n%s", want, logged)
				}
			}
			if tc.device["kv-own"] != nil && tc.device["kv-own"].finishes != 0 {
				t.Errorf("PID 1 finished a session the workload owns")
			}
		})
	}
}

func TestLeaveWatchStopsWhenAllSeen(t *testing.T) {
	a, b := &owned{Mode: manifest.SessionsLeave}, &owned{Mode: manifest.SessionsLeave}
	a.Name, b.Name = "a", "b"
	n := 0
	lw := &leaveWatch{pending: map[string]*owned{"a": a, "b": b}, every: time.Millisecond, held: func() map[string]int {
		n++
		if n < 3 {
			return map[string]int{"a": 10}
		}
		return map[string]int{"b": 11}
	}}
	t0 := time.Now()
	lw.run(time.Now().Add(10 * time.Second))
	if time.Since(t0) > 5*time.Second || a.Result != status.SessionTaken || b.Result != status.SessionTaken || a.Pid != 10 || b.Pid != 11 {
		t.Fatalf("after %v: a %+v b %+v", time.Since(t0), a, b)
	}
}
