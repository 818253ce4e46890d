package restore

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/luoinit/luoinit/luo"
	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/netconf"
	"github.com/luoinit/luoinit/status"
	"golang.org/x/sys/unix"
)

// Boot kinds and progress, as written to the state file (package status
// owns the words and the format).
const (
	StateNormal    = status.Normal      // cold boot: no manifest, workloads of the config start without fds
	StateUpdated   = status.BootUpdated // this boot came through a live update
	StateRestoring = status.Restoring   // fds being retrieved and handed over
	StateFinished  = status.Finished    // every fd and session delivered or left to its owner
	StateDegraded  = status.Degraded    // data was lost or could not be delivered; workloads started anyway
)

// Paths on the restore side.
const (
	ManifestPath = "/" + manifest.Path
	ConfigPath   = "/" + manifest.ConfigPath
	StateDir     = status.Dir
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
	// Timeline collects the phases of the boot; nil keeps none.
	Timeline *Timeline
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
	// Phases is the timeline of the boot until every first handoff ended.
	Phases []Phase
	// Workloads is what was restored for each workload, with the sessions
	// it owns; the state file's per-workload lines come from it.
	Workloads []*Workload
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
func Boot(o BootOptions) (*Report, error) { return Start(o).Run() }

// Pending is a Boot whose first steps run in the background: the
// manifest being read and parsed and, for a loopback-only network, the
// loopback being brought up. A PID 1 starts it before it mounts
// anything and runs it once /proc, /sys and /dev are there: the reading
// does not wait for the mounts, nor the mounts for the reading.
type Pending struct {
	b      *boot
	loaded chan struct{} // closed once m, err and netDone are set
	m      *manifest.Manifest
	err    error
	// netDone is closed when the early network is up; nil when the
	// network waits for Run (it may read /sys, or there is no manifest).
	netDone <-chan struct{}
}

// Start reads the manifest in the background and, if its network is the
// loopback alone (netlink only: nothing mounted is needed), brings it up
// as soon as it is read. Run does the rest.
func Start(o BootOptions) *Pending {
	o = o.withDefaults()
	p := &Pending{
		b:      &boot{o: o, logf: o.Log, tl: o.Timeline, rep: &Report{Started: o.Started}},
		loaded: make(chan struct{}),
	}
	go p.load()
	return p
}

// load is Start's background step.
func (p *Pending) load() {
	defer close(p.loaded)
	defer func() {
		if r := recover(); r != nil {
			p.m, p.err = nil, fmt.Errorf("manifest %s: panic while reading it: %v", p.b.o.Manifest, r)
		}
	}()
	p.m, p.err = manifest.Load(p.b.o.Manifest)
	p.b.tl.Mark(PhaseManifest)
	if p.err == nil && netconf.LoopbackOnly(p.m.Network) {
		p.netDone = p.b.startNetwork(p.m.Network)
	}
}

// Run finishes the boot Start began: see Boot.
func (p *Pending) Run() (*Report, error) {
	<-p.loaded
	b, m := p.b, p.m
	if p.err != nil {
		return b.withoutManifest(p.err)
	}
	b.begin(m)
	netDone := p.netDone
	if netDone == nil {
		netDone = b.startNetwork(m.Network)
	}
	ret := b.retrieve(m)
	b.rep.Retrieved = BootTime()
	<-netDone
	b.noteLost(ret)
	b.run(m, ret)
	b.end(ret)
	return b.rep, nil
}

// withDefaults fills in what o leaves unset.
func (o BootOptions) withDefaults() BootOptions {
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
	o.Supervisor.Timeline = o.Timeline
	return o
}

// boot is one Boot in progress.
type boot struct {
	o         BootOptions
	logf      func(string, ...any)
	tl        *Timeline
	rep       *Report
	toDeliver map[string]int  // what each workload has to receive, before the handoffs consume it
	stateDone <-chan struct{} // closed when the state file write in flight is done; nil if none
}

// state writes the state file with the boot in state s, after any write
// still in flight, and returns once it is written.
func (b *boot) state(s string) {
	b.stateBeside(s)
	b.waitState()
}

// stateBeside is state off the restore path: what the file says is taken
// now, and it is written while the fds are retrieved. The next state
// waits for it, so the file never goes back.
func (b *boot) stateBeside(s string) {
	b.waitState()
	b.rep.State = s
	st := b.rep.Status()
	b.stateDone = b.beside("state file: panic while writing it", func() {
		if err := status.Write(b.o.StateDir, st); err != nil {
			b.logf("state file: %v", err)
		}
	})
}

// beside runs f in a goroutine beside the restore and returns a channel
// closed when it is done. A panic in f is logged (as what: the panic)
// and ends only f: PID 1 and the restore go on.
func (b *boot) beside(what string, f func()) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if p := recover(); p != nil {
				b.logf("%s: %v", what, p)
			}
		}()
		f()
	}()
	return done
}

// waitState waits for a write stateBeside began.
func (b *boot) waitState() {
	if b.stateDone != nil {
		<-b.stateDone
		b.stateDone = nil
	}
}

// withoutManifest boots from the config: there is no manifest (a cold
// boot), or one that cannot be read, which cannot say which fds exist:
// the config's workloads start and the log says loudly what happened.
func (b *boot) withoutManifest(err error) (*Report, error) {
	if errors.Is(err, os.ErrNotExist) {
		b.rep.Kind = StateNormal
		b.state(StateNormal)
		return coldBoot(b.o, b.rep, b.logf)
	}
	b.logf("manifest %s is unusable, starting the config's workloads without fds: %v", b.o.Manifest, err)
	b.rep.Kind = StateDegraded
	b.state(StateDegraded)
	return coldBoot(b.o, b.rep, b.logf)
}

// begin says that this boot came through a live update, and from where.
func (b *boot) begin(m *manifest.Manifest) {
	rep := b.rep
	rep.Kind, rep.Generation, rep.Timing = StateUpdated, m.Generation, m.Timing
	rep.FromKernel, rep.ToKernel = m.KernelRelease, b.o.release()
	b.stateBeside(StateRestoring)
	b.logf("live update boot: generation %d, updated from kernel %s to %s, manifest written %s, %d workloads",
		m.Generation, status.Release(rep.FromKernel), status.Release(rep.ToKernel), m.Written.Format(time.RFC3339), len(m.Workloads))
	if want := m.NextKernel.Release; want != "" && want != rep.ToKernel {
		b.logf("the manifest was written for kernel %s but this is %s: the image at the kexec was not the one checked", want, status.Release(rep.ToKernel))
	}
}

// startNetwork brings the network up while the fds are retrieved: neither
// touches the other, and the workloads need both before they start. The
// channel is closed when it is done.
func (b *boot) startNetwork(n manifest.Network) <-chan struct{} {
	return b.beside("network: panic while applying it (the workloads start all the same)", func() {
		applyNetwork(b.o, b.rep, n, "the old kernel's network")
		b.tl.Mark(PhaseNetwork)
	})
}

// retrieve gets every fd and session of the manifest back, or records
// them all lost when /dev/liveupdate cannot be opened.
func (b *boot) retrieve(m *manifest.Manifest) *Retrieved {
	dev, err := b.o.OpenDevice()
	if err != nil {
		b.logf("cannot restore anything: %v", err)
		ret := &Retrieved{}
		for _, spec := range m.Workloads {
			w := &Workload{Spec: spec, Lost: lostAll(spec, err), Owned: ownedLost(spec, err)}
			ret.Workloads = append(ret.Workloads, w)
			ret.Lost = append(ret.Lost, w.Lost...)
		}
		return ret
	}
	b.tl.Mark(PhaseDevice)
	ret := Retrieve(dev, m, b.logf, b.tl)
	// Before any workload starts: /dev/liveupdate admits one opener, and
	// a workload may manage sessions of its own.
	dev.Close()
	return ret
}

// noteLost logs every fd that did not come back; any makes the boot
// degraded.
func (b *boot) noteLost(ret *Retrieved) {
	b.rep.Lost = ret.Lost
	for _, l := range ret.Lost {
		b.logf("%s", l)
	}
	if len(ret.Lost) > 0 {
		b.rep.Kind = StateDegraded
	}
	b.rep.Workloads = ret.Workloads
	b.toDeliver = map[string]int{}
	for _, w := range ret.Workloads {
		b.toDeliver[w.Spec.Name] = len(w.Files)
	}
}

// run starts the workloads and hands each its fds; meanwhile the freeze
// record is parsed (blackout figures only) and the sessions left to their
// owners are watched. It returns once every first handoff ended and the
// owned sessions are settled.
func (b *boot) run(m *manifest.Manifest, ret *Retrieved) {
	timeout := b.o.Supervisor.HandoffTimeout
	if timeout == 0 {
		timeout = DefaultHandoffTimeout
	}
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		newLeaveWatch(ret.Workloads).run(time.Now().Add(timeout))
	}()
	b.rep.Supervisor = NewSupervisor(b.o.Start, b.logf, b.o.Supervisor)
	recDone := b.beside("freeze record: panic while parsing it", func() { ret.ParseRecord(b.logf) })
	b.rep.Results = b.rep.Supervisor.Run(ret.Workloads)
	b.rep.Done = BootTime()
	<-recDone
	if ret.Record != nil {
		m.ApplyRecord(*ret.Record)
		b.rep.Timing = m.Timing
	}
	<-watched
	settleOwned(ret.Workloads, b.rep.Results, timeout, b.logf)
}

// end writes the final state: degraded means data was lost or could not
// be delivered; a workload that had nothing to receive and did no handoff
// degrades nothing, and neither does one that got its fds but never said
// READY=1 (the report and the state file say so).
func (b *boot) end(ret *Retrieved) {
	end := StateFinished
	if b.rep.Kind == StateDegraded {
		end = StateDegraded
	}
	for i, r := range b.rep.Results {
		w := ret.Workloads[i]
		if (r.Err != nil && b.toDeliver[r.Workload] > 0) || (hasFDs(w.Spec) && r.Delivered > 0 && !r.Finished) {
			end = StateDegraded
		}
		for _, ow := range w.Owned {
			if ow.Result == status.SessionLost || ow.Result == status.SessionUndelivered {
				end = StateDegraded
			}
		}
	}
	b.rep.Phases = b.tl.Phases()
	b.state(end)
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
			rep.Phases = o.Timeline.Phases()
			if err := writeState(o.StateDir, rep); err != nil {
				logf("state file: %v", err)
			}
			return rep, nil
		}
		return rep, fmt.Errorf("cold boot: %w", err)
	}
	applyNetwork(o, rep, cfg.Network, "the config's static network")
	var ws []*Workload
	for _, spec := range cfg.Workloads {
		ws = append(ws, &Workload{Spec: spec})
	}
	rep.Workloads = ws
	logf("cold boot: starting %d workloads of %s", len(ws), o.Config)
	rep.Supervisor = NewSupervisor(o.Start, logf, o.Supervisor)
	rep.Results = rep.Supervisor.Run(ws)
	rep.Done = BootTime()
	rep.Phases = o.Timeline.Phases()
	if err := writeState(o.StateDir, rep); err != nil {
		logf("state file: %v", err)
	}
	return rep, nil
}

// writeState writes the state file (package status) from the report.
func writeState(dir string, r *Report) error {
	return status.Write(dir, r.Status())
}

// Status is the report in the state file's terms.
func (r *Report) Status() *status.Status {
	st := &status.Status{State: r.State, Boot: r.Kind, Generation: r.Generation, Lost: len(r.Lost), Init: r.Started, Phases: r.Phases,
		FromKernel: r.FromKernel, ToKernel: r.ToKernel}
	// Figures, once the first handoffs are over.
	if r.Done > 0 {
		if r.Retrieved > 0 {
			st.Restore = r.Retrieved - r.Started
		}
		st.HandoffDone = r.Done - r.Started
		st.Network, st.NetworkChanges, st.NetworkFailures = r.NetworkTook, r.NetworkChanges, r.NetworkFailures
		st.LastReady = r.LastAck()
		st.OldKernelBlackout = r.Timing.Blackout()
		st.Blackout = r.Blackout()
	}
	results := map[string]Result{}
	for _, res := range r.Results {
		results[res.Workload] = res
	}
	for _, w := range r.Workloads {
		res := results[w.Spec.Name]
		sw := status.Workload{Name: w.Spec.Name, Handoff: string(w.Spec.Handoff), Pid: res.Pid, Ready: res.AckedAt}
		for _, fd := range w.Spec.FDs {
			if !fd.Dropped {
				sw.FDs++
			}
		}
		if res.Err != nil {
			sw.Error = res.Err.Error()
		}
		sessionsHanded := 0
		for _, l := range res.Lost {
			sw.LostFDs = append(sw.LostFDs, status.LostFD{FD: l.FD, Session: l.Session, Token: l.Token, Error: errText(l.Err)})
		}
		for _, o := range w.Owned {
			ss := status.Session{Name: o.Name, Via: string(o.Via), Mode: string(o.Mode), Result: o.Result, Pid: o.Pid, Error: errText(o.Err)}
			if o.Result == status.SessionDelivered {
				sessionsHanded++
			}
			if o.Result == status.SessionLost {
				st.Lost++
			}
			sw.Sessions = append(sw.Sessions, ss)
		}
		// Delivered counts every file handed over; the owned sessions are
		// reported as sessions.
		if res.Delivered > 0 {
			sw.FDsDelivered = res.Delivered - sessionsHanded
		}
		st.Workloads = append(st.Workloads, sw)
	}
	return st
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
