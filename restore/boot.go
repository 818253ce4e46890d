package restore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/luoinit/luoinit/luo"
	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/netconf"
	"golang.org/x/sys/unix"
)

// Boot kinds and progress, as written to the state file.
const (
	StateNormal    = "normal"    // cold boot: no manifest, workloads of the config start without fds
	StateUpdated   = "updated"   // this boot came through a live update
	StateRestoring = "restoring" // fds being retrieved and handed over
	StateFinished  = "finished"  // every workload acknowledged and its session finished
	StateDegraded  = "degraded"  // a manifest, but fds were lost; workloads started anyway
)

// Paths on the restore side.
const (
	ManifestPath = "/" + manifest.Path
	ConfigPath   = "/" + manifest.ConfigPath
	StateDir     = "/run/luoinit"
)

// BootOptions says where things are; tests point them into a temp dir.
type BootOptions struct {
	Manifest, Config, StateDir string
	// OpenDevice opens /dev/liveupdate; default luo.Open(luo.DefaultPath).
	OpenDevice func() (Device, error)
	Start      Starter
	Log        func(format string, args ...any)
	Supervisor Options
	// Started is CLOCK_BOOTTIME when init started, for the report.
	Started time.Duration
	// ApplyNetwork puts a network configuration in place; default
	// netconf.Apply.
	ApplyNetwork func(n manifest.Network, logf func(string, ...any)) (int, []error, time.Duration)
	// Release is this kernel's release; default uname -r.
	Release string
}

// Report is what a boot did.
type Report struct {
	Kind       string // normal, updated or degraded
	State      string // finished or degraded at the end
	Generation uint64
	// FromKernel and ToKernel are the releases a live update went from
	// (the manifest's kernel_release) and to (this kernel); "" on a cold
	// boot.
	FromKernel, ToKernel string
	Timing               manifest.Timing
	Results              []Result
	Lost                 []Lost
	Started              time.Duration // CLOCK_BOOTTIME at init start
	Retrieved            time.Duration // CLOCK_BOOTTIME when every fd was retrieved
	Done                 time.Duration // CLOCK_BOOTTIME when every first handoff ended
	// Network figures: changes made, failures, time spent.
	NetworkChanges  int
	NetworkFailures int
	NetworkTook     time.Duration
	// Supervisor keeps the workloads running; nil if none were started.
	Supervisor *Supervisor
}

// Blackout is the time the workloads were out of service: from the first
// workload stopped to the reboot call, measured in the old kernel, plus
// the new kernel's CLOCK_BOOTTIME when the last workload acknowledged. The
// gap between the reboot call and the new kernel's start is seen by
// neither clock. Zero if unknown.
func (r *Report) Blackout() time.Duration {
	old, acked := r.Timing.Blackout(), r.LastAck()
	if old == 0 || acked == 0 {
		return 0
	}
	return old + acked
}

// LastAck is CLOCK_BOOTTIME when the last workload acknowledged its
// first handoff, 0 if none did.
func (r *Report) LastAck() time.Duration {
	var acked time.Duration
	for _, res := range r.Results {
		acked = max(acked, res.AckedAt)
	}
	return acked
}

// Boot decides the kind of this boot, restores what came through, starts
// the workloads and writes the state file at each step. It returns once
// every workload's first handoff ended; supervision goes on. An error is
// returned only when nothing at all can be started.
func Boot(o BootOptions) (*Report, error) {
	if o.Manifest == "" {
		o.Manifest = ManifestPath
	}
	if o.Config == "" {
		o.Config = ConfigPath
	}
	if o.StateDir == "" {
		o.StateDir = StateDir
	}
	if o.ApplyNetwork == nil {
		o.ApplyNetwork = netconf.Apply
	}
	if o.OpenDevice == nil {
		o.OpenDevice = func() (Device, error) {
			d, err := luo.Open(luo.DefaultPath)
			if err != nil {
				return nil, err
			}
			return LUODevice{d}, nil
		}
	}
	logf := o.Log
	rep := &Report{Started: o.Started}
	state := func(s string) {
		rep.State = s
		if err := writeState(o.StateDir, rep); err != nil {
			logf("state file: %v", err)
		}
	}

	m, err := manifest.Load(o.Manifest)
	switch {
	case errors.Is(err, os.ErrNotExist):
		rep.Kind = StateNormal
		state(StateNormal)
		return coldBoot(o, rep, logf)
	case err != nil:
		// A manifest that cannot be read cannot say which fds exist:
		// start the config's workloads and say loudly what happened.
		logf("manifest %s is unusable, starting the config's workloads without fds: %v", o.Manifest, err)
		rep.Kind = StateDegraded
		state(StateDegraded)
		return coldBoot(o, rep, logf)
	}
	rep.Kind, rep.Generation, rep.Timing = StateUpdated, m.Generation, m.Timing
	rep.FromKernel, rep.ToKernel = m.KernelRelease, o.release()
	state(StateRestoring)
	logf("live update boot: generation %d, updated from kernel %s to %s, manifest written %s, %d workloads",
		m.Generation, orUnknown(rep.FromKernel), orUnknown(rep.ToKernel), m.Written.Format(time.RFC3339), len(m.Workloads))
	if want := m.NextKernel.Release; want != "" && want != rep.ToKernel {
		logf("the manifest was written for kernel %s but this is %s: the image at the kexec was not the one checked", want, orUnknown(rep.ToKernel))
	}

	var ret *Retrieved
	dev, err := o.OpenDevice()
	if err != nil {
		logf("cannot restore anything: %v", err)
		ret = &Retrieved{}
		for _, spec := range m.Workloads {
			w := &Workload{Spec: spec, Lost: lostAll(spec, err)}
			ret.Workloads = append(ret.Workloads, w)
			ret.Lost = append(ret.Lost, w.Lost...)
		}
	} else {
		ret = Retrieve(dev, m, logf)
		// Before any workload starts: /dev/liveupdate admits one opener,
		// and a workload may manage sessions of its own.
		dev.Close()
	}
	rep.Retrieved = BootTime()
	if ret.Record != nil {
		m.ApplyRecord(*ret.Record)
		rep.Timing = m.Timing
	}
	applyNetwork(o, rep, m.Network, "the old kernel's network")
	rep.Lost = ret.Lost
	for _, l := range ret.Lost {
		logf("%s", l)
	}
	if len(ret.Lost) > 0 {
		rep.Kind = StateDegraded
	}
	rep.Supervisor = NewSupervisor(o.Start, logf, o.Supervisor)
	rep.Results = rep.Supervisor.Run(ret.Workloads)
	rep.Done = BootTime()
	end := StateFinished
	if rep.Kind == StateDegraded {
		end = StateDegraded
	}
	for _, r := range rep.Results {
		if r.Err != nil || (r.Delivered > 0 && !r.Finished) {
			end = StateDegraded
		}
	}
	state(end)
	return rep, nil
}

// release is the running kernel's release: BootOptions.Release, else uname -r.
func (o BootOptions) release() string {
	if o.Release != "" {
		return o.Release
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return ""
	}
	return unix.ByteSliceToString(uts.Release[:])
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

// applyNetwork brings the network up before any workload starts (the
// loopback always). Each failure is logged by what failed; the workloads
// start all the same.
func applyNetwork(o BootOptions, rep *Report, n manifest.Network, what string) {
	changes, errs, took := o.ApplyNetwork(n, o.Log)
	for _, err := range errs {
		o.Log("network: %v", err)
	}
	rep.NetworkChanges, rep.NetworkFailures, rep.NetworkTook = changes, len(errs), took
	o.Log("network: %s applied, %d changes, %d failures, in %v", what, changes, len(errs), took.Round(time.Microsecond))
}

// coldBoot starts the config's workloads with nothing to hand over (they
// still get the handoff socket, and receive zero fds).
func coldBoot(o BootOptions, rep *Report, logf func(string, ...any)) (*Report, error) {
	cfg, err := manifest.LoadConfig(o.Config)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			applyNetwork(o, rep, manifest.Network{}, "loopback only")
			logf("no manifest and no config (%s): no workloads to start", o.Config)
			return rep, nil
		}
		return rep, fmt.Errorf("cold boot: %w", err)
	}
	applyNetwork(o, rep, cfg.Network, "the config's static network")
	var ws []*Workload
	for _, spec := range cfg.Workloads {
		ws = append(ws, &Workload{Spec: spec})
	}
	logf("cold boot: starting %d workloads of %s", len(ws), o.Config)
	rep.Supervisor = NewSupervisor(o.Start, logf, o.Supervisor)
	rep.Results = rep.Supervisor.Run(ws)
	rep.Done = BootTime()
	return rep, nil
}

// writeState writes StateDir/state atomically: key=value lines.
func writeState(dir string, r *Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "state=%s\nboot=%s\ngeneration=%d\nlost=%d\n", r.State, r.Kind, r.Generation, len(r.Lost))
	if r.FromKernel != "" || r.ToKernel != "" {
		fmt.Fprintf(&b, "from_kernel=%s\nto_kernel=%s\n", r.FromKernel, r.ToKernel)
	}
	// Figures, once the first handoffs are over (durations in ns).
	if r.Done > 0 {
		lastAck := r.LastAck()
		if r.Retrieved > 0 {
			fmt.Fprintf(&b, "restore_ns=%d\n", int64(r.Retrieved-r.Started))
		}
		fmt.Fprintf(&b, "handoff_done_ns=%d\n", int64(r.Done-r.Started))
		fmt.Fprintf(&b, "network_ns=%d\nnetwork_changes=%d\nnetwork_failures=%d\n", int64(r.NetworkTook), r.NetworkChanges, r.NetworkFailures)
		if lastAck > 0 {
			fmt.Fprintf(&b, "last_ack_boottime_ns=%d\n", int64(lastAck))
		}
		if d := r.Timing.Blackout(); d > 0 {
			fmt.Fprintf(&b, "old_kernel_blackout_ns=%d\n", int64(d))
		}
		if d := r.Blackout(); d > 0 {
			fmt.Fprintf(&b, "blackout_ns=%d\n", int64(d))
		}
	}
	tmp := filepath.Join(dir, ".state.tmp")
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "state"))
}
