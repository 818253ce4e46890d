package restore

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/luoinit/luoinit/carry"
	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/status"
	"github.com/u-root/uio/ulog"
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

// own is luoinit's own session as prepare leaves it: the manifest, sealed
// or not, and a freeze record.
func own(manifest []byte, sealed bool) *fakeSession {
	rec, _ := manifestRecord()
	return &fakeSession{name: carry.Session, sealed: sealed, files: map[uint64]string{carry.ManifestToken: string(manifest), carry.RecordToken: rec}}
}

func manifestRecord() (string, error) {
	b, err := manifest.MarshalRecord(manifest.Record{FirstStopped: manifest.Stamp{MonotonicNS: 1e9}, Reboot: manifest.Stamp{MonotonicNS: 2e9}})
	return string(b), err
}

func TestBootKinds(t *testing.T) {
	good := bootManifest(t)
	kv := &fakeSession{name: "luoinit.kv", files: map[uint64]string{1: "arena"}}
	const marker = "console=ttyS0 liveupdate=on luoinit.update=4"
	for _, tc := range []struct {
		desc      string
		cmdline   string
		config    bool
		device    fakeDevice // nil: open fails with ENOENT
		kind      status.Boot
		state     status.State
		delivered int
		reason    string // in the report and the state file
		logHas    []string
	}{
		{"cold boot", "console=ttyS0", true, nil, status.BootNormal, status.Normal, 0, "", []string{"cold boot: starting 1 workloads"}},
		{"nothing at all", "console=ttyS0", false, nil, status.BootNormal, status.Normal, 0, "", []string{"no workloads"}},
		{"no marker, state there", "console=ttyS0 liveupdate=on", true, fakeDevice{carry.Session: own(good, true), "luoinit.kv": kv}, status.BootNormal, status.Normal, 0, "", []string{"cold boot"}},
		{"live update", marker, true, fakeDevice{carry.Session: own(good, true), "luoinit.kv": kv}, status.BootUpdated, status.Finished, 1, "",
			[]string{"generation 4", "updated from kernel 7.3.4 to 7.4.1", "the manifest was written for kernel 7.4.0 but this is 7.4.1"}},
		{"no /dev/liveupdate", marker, true, nil, status.BootUpdated, status.Degraded, 0, "no /dev/liveupdate: the kernel was booted without liveupdate=on",
			[]string{"starting the config's workloads without fds", "cold boot: starting 1 workloads"}},
		{"own session gone", marker, true, fakeDevice{"luoinit.kv": kv}, status.BootUpdated, status.Degraded, 0, `luoinit's own session "luoinit" did not come back`, nil},
		{"manifest token gone", marker, true, fakeDevice{carry.Session: {name: carry.Session, files: map[uint64]string{}}}, status.BootUpdated, status.Degraded, 0,
			`the manifest (session "luoinit" token 0) did not come back`, nil},
		{"manifest unsealed", marker, true, fakeDevice{carry.Session: own(good, false), "luoinit.kv": kv}, status.BootUpdated, status.Degraded, 0,
			"is unusable: not sealed: seals 0x0, missing F_SEAL_WRITE|F_SEAL_GROW|F_SEAL_SHRINK|F_SEAL_SEAL", nil},
		{"manifest corrupt", marker, true, fakeDevice{carry.Session: own([]byte("version = 1\n[[workload]\n"), true)}, status.BootUpdated, status.Degraded, 0,
			"is unusable: manifest.toml:3: syntax error", nil},
		{"manifest newer", marker, true, fakeDevice{carry.Session: own([]byte(strings.Replace(string(good), "version = 1", "version = 2", 1)), true)}, status.BootUpdated, status.Degraded, 0,
			"written by a newer luoinit: version 2", nil},
		{"manifest too large", marker, true, fakeDevice{carry.Session: own(make([]byte, manifest.MaxFileSize+1), true)}, status.BootUpdated, status.Degraded, 0,
			fmt.Sprintf("is unusable: %d bytes, more than the %d allowed", manifest.MaxFileSize+1, manifest.MaxFileSize), nil},
		{"panic while reading", marker, true, fakeDevice{carry.Session: {name: carry.Session, panics: true}}, status.BootUpdated, status.Degraded, 0,
			`the manifest (session "luoinit" token 0): panic while reading it: retrieve fd: a bug`, nil},
		{"marker not a number", "luoinit.update=x", true, fakeDevice{carry.Session: own(good, true), "luoinit.kv": kv}, status.BootUpdated, status.Degraded, 0,
			`luoinit.update="x" on the kernel command line is not a generation`, nil},
		{"workload session gone", marker, true, fakeDevice{carry.Session: own(good, true)}, status.BootUpdated, status.Degraded, 0, "", []string{`fd "arena"`, "lost"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			cpath := filepath.Join(dir, "config.toml")
			copyPath := filepath.Join(dir, "run", "manifest.toml")
			if tc.config {
				os.WriteFile(cpath, []byte(bootConfig), 0o644)
			}
			var mu sync.Mutex
			var log strings.Builder
			st := &inProcess{behave: acks(t, nil)}
			netApplied := 0
			rep, err := Start(BootOptions{
				Cmdline: tc.cmdline, Config: cpath, StateDir: filepath.Join(dir, "run"), ManifestCopy: copyPath,
				OpenDevice: func() (Device, error) {
					if tc.device == nil {
						return nil, &os.PathError{Op: "open", Path: "/dev/liveupdate", Err: unix.ENOENT}
					}
					return tc.device, nil
				},
				Release:    "7.4.1",
				Start:      st,
				Log:        printf(func(f string, a ...any) { mu.Lock(); fmt.Fprintf(&log, f+"\n", a...); mu.Unlock() }),
				Supervisor: Options{HandoffTimeout: time.Second},
				Timeline:   NewTimeline(BootTime()),
				// Never the host's network: count the calls instead.
				ApplyNetwork: func(n manifest.Network, _ ulog.Logger) (int, []error, time.Duration) {
					mu.Lock()
					defer mu.Unlock()
					if st.starts != 0 {
						t.Errorf("network applied after a workload started")
					}
					netApplied++
					return 0, nil, 0
				},
			}).Run()
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			logged := log.String()
			mu.Unlock()
			if rep.Boot != tc.kind || rep.State != tc.state {
				t.Fatalf("kind %q state %q, want %q %q\n%s", rep.Boot, rep.State, tc.kind, tc.state, logged)
			}
			if !strings.Contains(rep.Reason, tc.reason) || (tc.reason == "") != (rep.Reason == "") {
				t.Errorf("reason %q, want %q", rep.Reason, tc.reason)
			}
			if tc.reason != "" && !strings.Contains(logged, tc.reason) {
				t.Errorf("the log does not give the reason %q:\n%s", tc.reason, logged)
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
			if err != nil || !strings.Contains(string(b), "state="+string(tc.state)+"\n") || !strings.Contains(string(b), "boot="+string(tc.kind)+"\n") {
				t.Fatalf("state file %q (%v)", b, err)
			}
			if tc.reason != "" && !strings.Contains(string(b), "reason="+strconv.Quote(rep.Reason)+"\n") {
				t.Errorf("state file %q lacks the reason", b)
			}
			// The manifest as carried is copied when it was read, and only then.
			restored := tc.kind == status.BootUpdated && tc.reason == ""
			if c, err := os.ReadFile(copyPath); restored && (err != nil || string(c) != string(good)) {
				t.Errorf("manifest copy %q (%v), want the carried manifest", c, err)
			} else if !restored && err == nil {
				t.Errorf("a manifest copy was written on a boot that read none")
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
			phases := []string{PhaseInit}
			if restored {
				phases = append(phases, PhaseDevice, PhaseManifest, PhaseRecord)
			}
			for _, name := range phases {
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
			// A manifest that was read names both kernels; otherwise neither.
			if fromTo := strings.Contains(string(b), "from_kernel=7.3.4\nto_kernel=7.4.1\n"); fromTo != restored || !restored && strings.Contains(string(b), "_kernel=") {
				t.Errorf("state file %q: from/to kernel lines wrong", b)
			}
			// The freeze record came from luoinit's own session.
			if restored && rep.Timing.Blackout() != time.Second {
				t.Errorf("old kernel's blackout %v, want the record's 1s", rep.Timing.Blackout())
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

// TestRecordBlackout: the blackout is the old kernel's part (first stop to
// reboot call) plus the new kernel's time to the last ack, and only when
// both are known and the first handoffs are over.
func TestRecordBlackout(t *testing.T) {
	timing := manifest.Timing{FirstStopped: manifest.Stamp{MonotonicNS: 1e9}, Reboot: manifest.Stamp{MonotonicNS: 1.25e9}}
	acked := []Result{{Workload: "a", AckedAt: 2 * time.Second}, {Workload: "b", AckedAt: 3 * time.Second}, {Workload: "c"}}
	for _, tc := range []struct {
		desc                     string
		r                        Report
		old, lastReady, blackout time.Duration
	}{
		{"live update", Report{Timing: timing, Results: acked, done: 4 * time.Second}, 250 * time.Millisecond, 3 * time.Second, 3250 * time.Millisecond},
		{"no freeze record", Report{Results: acked, done: 4 * time.Second}, 0, 3 * time.Second, 0},
		{"nobody acked", Report{Timing: timing, Results: acked[2:], done: 4 * time.Second}, 250 * time.Millisecond, 0, 0},
		{"handoffs not over", Report{Timing: timing, Results: acked}, 0, 0, 0},
	} {
		st := tc.r.record()
		if st.OldKernelBlackout != tc.old || st.LastReady != tc.lastReady || st.Blackout != tc.blackout {
			t.Errorf("%s: old %v last ready %v blackout %v, want %v %v %v", tc.desc, st.OldKernelBlackout, st.LastReady, st.Blackout, tc.old, tc.lastReady, tc.blackout)
		}
	}
}
