package restore

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/luoinit/luoinit/manifest"
	"golang.org/x/sys/unix"
)

const bootConfig = `version = 1

[[workload]]
name = "kv"
argv = ["/usr/bin/kv"]
handoff = "socket"

  [[workload.fd]]
  name = "arena"
`

func bootManifest(t *testing.T) []byte {
	t.Helper()
	cfg, err := manifest.ParseConfig([]byte(bootConfig))
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.NewManifest()
	m.Generation = 4
	m.KernelRelease = "7.3.4"
	m.NextKernel = manifest.NextKernel{Release: "7.4.0", Compatible: []string{"kho-v4", "luo-v5"}}
	m.Workloads[0].FDs[0].Token = 1
	m.Workloads[0].FDs[0].Kind = "memfd"
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBootKinds(t *testing.T) {
	good := fakeDevice{"luoinit.kv": {name: "luoinit.kv", files: map[uint64]string{1: "arena"}}}
	for _, tc := range []struct {
		desc      string
		manifest  string // "" none, "good", "corrupt"
		config    bool
		device    fakeDevice // nil: open fails with ENOENT
		kind      string
		state     string
		delivered int
		logHas    []string
	}{
		{"cold boot", "", true, nil, StateNormal, StateNormal, 0, []string{"cold boot: starting 1 workloads"}},
		{"nothing at all", "", false, nil, StateNormal, StateNormal, 0, []string{"no workloads"}},
		{"live update", "good", true, good, StateUpdated, StateFinished, 1, []string{"generation 4", "updated from kernel 7.3.4 to 7.4.1",
			"the manifest was written for kernel 7.4.0 but this is 7.4.1"}},
		{"no /dev/liveupdate", "good", true, nil, StateDegraded, StateDegraded, 0, []string{`workload "kv" fd "arena" (session "luoinit.kv" token 1) lost`, "liveupdate=on"}},
		{"session gone", "good", true, fakeDevice{}, StateDegraded, StateDegraded, 0, []string{`fd "arena"`, "lost"}},
		{"corrupt manifest", "corrupt", true, good, StateDegraded, StateDegraded, 0, []string{"unusable", "cold boot"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			mpath := filepath.Join(dir, "manifest.toml")
			cpath := filepath.Join(dir, "config.toml")
			switch tc.manifest {
			case "good":
				os.WriteFile(mpath, bootManifest(t), 0o644)
			case "corrupt":
				os.WriteFile(mpath, []byte("version = 1\n[[workload]\n"), 0o644)
			}
			if tc.config {
				os.WriteFile(cpath, []byte(bootConfig), 0o644)
			}
			var mu sync.Mutex
			var log strings.Builder
			st := &inProcess{behave: acks(t, nil)}
			netApplied := 0
			rep, err := Boot(BootOptions{
				Manifest: mpath, Config: cpath, StateDir: filepath.Join(dir, "run"),
				OpenDevice: func() (Device, error) {
					if tc.device == nil {
						return nil, fmt.Errorf("luo: open /dev/liveupdate: %w: the kernel has no LUO or was booted without liveupdate=on", unix.ENOENT)
					}
					return tc.device, nil
				},
				Release:    "7.4.1",
				Start:      st,
				Log:        func(f string, a ...any) { mu.Lock(); fmt.Fprintf(&log, f+"\n", a...); mu.Unlock() },
				Supervisor: Options{HandoffTimeout: time.Second},
				Timeline:   NewTimeline(BootTime()),
				// Never the host's network: count the calls instead.
				ApplyNetwork: func(n manifest.Network, _ func(string, ...any)) (int, []error, time.Duration) {
					mu.Lock()
					defer mu.Unlock()
					if st.starts != 0 {
						t.Errorf("network applied after a workload started")
					}
					netApplied++
					return 0, nil, 0
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			logged := log.String()
			mu.Unlock()
			if rep.Kind != tc.kind || rep.State != tc.state {
				t.Fatalf("kind %q state %q, want %q %q\n%s", rep.Kind, rep.State, tc.kind, tc.state, logged)
			}
			delivered := 0
			for _, r := range rep.Results {
				delivered += r.Delivered
			}
			if delivered != tc.delivered {
				t.Fatalf("delivered %d, want %d\n%s", delivered, tc.delivered, logged)
			}
			for _, w := range tc.logHas {
				if !strings.Contains(logged, w) {
					t.Errorf("log lacks %q:\n%s", w, logged)
				}
			}
			b, err := os.ReadFile(filepath.Join(dir, "run", "state"))
			if err != nil || !strings.Contains(string(b), "state="+tc.state+"\n") || !strings.Contains(string(b), "boot="+tc.kind+"\n") {
				t.Fatalf("state file %q (%v)", b, err)
			}
			// The timeline: the boot's phases in order, each workload's
			// exec before its ack, and the state file carries them.
			pos := map[string]int{}
			for i, p := range rep.Phases {
				pos[p.Name] = i
				if i > 0 && p.At < rep.Phases[i-1].At && !strings.Contains(p.Name, ":") {
					t.Errorf("phase %s at %v is before %s", p.Name, p.At, rep.Phases[i-1].Name)
				}
				if !strings.Contains(string(b), fmt.Sprintf("phase name=%q boottime_ns=%d\n", p.Name, p.At)) {
					t.Errorf("state file lacks phase %s", p.Name)
				}
			}
			for _, name := range []string{PhaseInit, PhaseManifest} {
				if _, ok := pos[name]; !ok {
					t.Errorf("no phase %q in %v", name, rep.Phases)
				}
			}
			for _, r := range rep.Results {
				e, okE := pos[PhaseExec+":"+r.Workload]
				a, okA := pos[PhaseAck+":"+r.Workload]
				if r.Err == nil && (!okE || !okA || a < e) {
					t.Errorf("workload %s: exec at %d, ack at %d in %v", r.Workload, e, a, rep.Phases)
				}
			}
			// A manifest that was read names both kernels; a cold boot neither.
			if fromTo := strings.Contains(string(b), "from_kernel=7.3.4\nto_kernel=7.4.1\n"); fromTo != (tc.manifest == "good") || tc.manifest != "good" && strings.Contains(string(b), "_kernel=") {
				t.Errorf("state file %q: from/to kernel lines wrong for manifest %q", b, tc.manifest)
			}
			if netApplied != 1 {
				t.Errorf("network applied %d times, want once", netApplied)
			}
			if tc.config && st.starts == 0 {
				t.Fatal("no workload was started")
			}
		})
	}
}

// TestStartEarlyNetwork: Start reads the manifest before Run is called
// and brings a loopback-only network up then (it needs nothing mounted);
// any other network waits for Run, which a PID 1 calls once /sys is
// mounted. Either way it is applied once, before any workload starts.
func TestStartEarlyNetwork(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		network string // appended to the manifest
		early   bool
	}{
		{"loopback only", "", true},
		{"loopback listed", "\n[[network.link]]\nname = \"lo\"\nkind = \"loopback\"\nup = true\n", true},
		{"a dummy link", "\n[[network.link]]\nname = \"lo\"\nkind = \"loopback\"\nup = true\n\n[[network.link]]\nname = \"d0\"\nkind = \"dummy\"\nup = true\n", false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			mpath := filepath.Join(dir, "manifest.toml")
			m := string(bootManifest(t)) + tc.network
			if _, err := manifest.Parse([]byte(m)); err != nil {
				t.Fatalf("test manifest: %v", err)
			}
			os.WriteFile(mpath, []byte(m), 0o644)
			applied := make(chan manifest.Network, 2)
			st := &inProcess{behave: acks(t, nil)}
			good := fakeDevice{"luoinit.kv": {name: "luoinit.kv", files: map[uint64]string{1: "arena"}}}
			p := Start(BootOptions{
				Manifest: mpath, Config: filepath.Join(dir, "none.toml"), StateDir: filepath.Join(dir, "run"),
				OpenDevice: func() (Device, error) { return good, nil },
				Release:    "7.4.1",
				Start:      st,
				Log:        func(string, ...any) {},
				Supervisor: Options{HandoffTimeout: time.Second},
				ApplyNetwork: func(n manifest.Network, _ func(string, ...any)) (int, []error, time.Duration) {
					applied <- n
					return 0, nil, 0
				},
			})
			select {
			case <-applied:
				if !tc.early {
					t.Fatal("a network that is not loopback-only was applied before Run")
				}
			case <-time.After(500 * time.Millisecond):
				if tc.early {
					t.Fatal("a loopback-only network was not applied before Run")
				}
			}
			rep, err := p.Run()
			if err != nil {
				t.Fatal(err)
			}
			if rep.State != StateFinished || st.starts != 1 {
				t.Fatalf("state %q, %d starts; want finished, 1", rep.State, st.starts)
			}
			want := 1
			if tc.early {
				want = 0 // the one call came before Run
			}
			if got := len(applied); got != want {
				t.Errorf("network applied %d more times during Run, want %d", got, want)
			}
			b, err := os.ReadFile(filepath.Join(dir, "run", "state"))
			if err != nil || !strings.Contains(string(b), "state="+StateFinished+"\n") {
				t.Fatalf("state file %q (%v): the last write is not the final one", b, err)
			}
		})
	}
}
