package restore

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/luoinit/luoinit/carry"
	"github.com/luoinit/luoinit/luo"
	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/netconf"
	"github.com/luoinit/luoinit/status"
	"github.com/luoinit/luoinit/wellknown"
	"github.com/u-root/uio/ulog"
	"golang.org/x/sys/unix"
)

// BootOptions says where things are; tests point them into a temp dir.
type BootOptions struct {
	// Config is the config's path; ManifestCopy where the manifest read
	// from luoinit's own session is copied (default wellknown.ManifestCopy).
	Config, ManifestCopy, StateDir string
	// Cmdline is the kernel command line; default /proc/cmdline.
	Cmdline string
	// OpenDevice opens /dev/liveupdate; default luo.Open(luo.DefaultPath).
	OpenDevice func() (Device, error)
	Start      Starter
	Log        ulog.Logger
	Supervisor Options
	// Started is CLOCK_BOOTTIME when init started, for the report.
	Started time.Duration
	// Timeline collects the phases of the boot; nil keeps none.
	Timeline *Timeline
	// ApplyNetwork puts a network configuration in place; default
	// netconf.Apply.
	ApplyNetwork func(n manifest.Network, log ulog.Logger) (int, []error, time.Duration)
	// Release is this kernel's release; default uname -r.
	Release string
}

// Report is what a boot did: its record as the state file holds it
// (status.Status: state, boot kind, reason, generation, kernels, the
// figures, the phases, a line per workload), and what only the caller of
// Run needs besides.
type Report struct {
	status.Status
	// Timing is the old kernel's record of the freeze (zero on a cold
	// boot, or when the record did not come back).
	Timing manifest.Timing
	// Results are the workloads' first handoffs.
	Results []Result
	// LostFDs are the fds and sessions that did not come back.
	LostFDs []Lost
	// Supervisor keeps the workloads running; nil if none were started.
	Supervisor *Supervisor

	retrieved time.Duration // CLOCK_BOOTTIME when every fd was retrieved
	done      time.Duration // CLOCK_BOOTTIME when every first handoff ended
	restored  []*Workload   // what was restored for each workload, with its owned sessions
}

// Pending is a Boot not yet run: Run does it, once /proc, /sys and /dev
// are mounted (the manifest comes from /dev/liveupdate).
type Pending struct{ b *boot }

// Start prepares a Boot; Run carries it out.
func Start(o BootOptions) *Pending {
	o = o.withDefaults()
	return &Pending{b: &boot{o: o, log: o.Log, tl: o.Timeline, rep: &Report{Status: status.Status{Init: o.Started}}}}
}

// Run decides the kind of this boot, restores what came through, starts
// the workloads and writes the state file at each step. It returns once
// every workload's first handoff ended; supervision goes on. An error is
// returned only when nothing at all can be started.
func (p *Pending) Run() (*Report, error) {
	b := p.b
	src := b.load()
	if src.cold {
		b.rep.Boot = status.BootNormal
		b.state(status.Normal)
		return coldBoot(b.o, b.rep, b.log)
	}
	if src.err != nil {
		return b.withoutState(src)
	}
	m := src.m
	b.begin(m)
	b.copied = b.beside("manifest copy: panic while writing it", func() { b.copyManifest(src.data) })
	netDone := b.startNetwork(m.Network)
	ret := b.retrieve(src, m)
	b.rep.retrieved = BootTime()
	<-netDone
	b.noteLost(ret)
	b.run(m, ret)
	b.end(ret)
	return b.rep, nil
}

// withDefaults fills in what o leaves unset.
func (o BootOptions) withDefaults() BootOptions {
	if o.ManifestCopy == "" {
		o.ManifestCopy = wellknown.ManifestCopy
	}
	if o.Config == "" {
		o.Config = wellknown.Config
	}
	if o.StateDir == "" {
		o.StateDir = wellknown.RunDir
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
			return luoDevice{d}, nil
		}
	}
	o.Supervisor.Timeline = o.Timeline
	return o
}

// boot is one Boot in progress.
type boot struct {
	o         BootOptions
	log       ulog.Logger
	tl        *Timeline
	rep       *Report
	toDeliver map[string]int  // what each workload has to receive, before the handoffs consume it
	stateDone <-chan struct{} // closed when the state file write in flight is done; nil if none
	copied    <-chan struct{} // closed when the manifest's copy is written
}

// state writes the state file with the boot in state s, after any write
// still in flight, and returns once it is written.
func (b *boot) state(s status.State) {
	b.stateBeside(s)
	b.waitState()
}

// stateBeside is state off the restore path: what the file says is taken
// now, and it is written while the fds are retrieved. The next state
// waits for it, so the file never goes back.
func (b *boot) stateBeside(s status.State) {
	b.waitState()
	b.rep.State = s
	st := b.rep.record()
	b.stateDone = b.beside("state file: panic while writing it", func() {
		if err := status.Write(b.o.StateDir, st); err != nil {
			b.log.Printf("state file: %v", err)
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
				b.log.Printf("%s: %v", what, p)
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

// withoutState boots from the config after a live update whose own
// state did not come back (src.err says why): without the manifest
// nothing says which fds exist, so the config's workloads start without
// fds, the boot is an updated one and the state degraded, with the reason.
// The workloads' sessions stay unretrieved; the kernel drops them at the
// next live update.
func (b *boot) withoutState(src *source) (*Report, error) {
	b.log.Printf("live update boot (%s=%d), but its state did not come back: %v; starting the config's workloads without fds",
		carry.UpdateParam, src.generation, src.err)
	b.rep.Boot, b.rep.Reason, b.rep.Generation = status.BootUpdated, src.err.Error(), src.generation
	b.state(status.Degraded)
	return coldBoot(b.o, b.rep, b.log)
}

// begin says that this boot came through a live update, and from where.
func (b *boot) begin(m *manifest.Manifest) {
	rep := b.rep
	rep.Boot, rep.Generation, rep.Timing = status.BootUpdated, m.Generation, m.Timing
	rep.FromKernel, rep.ToKernel = m.KernelRelease, b.o.release()
	b.stateBeside(status.Restoring)
	b.log.Printf("live update boot: generation %d, updated from kernel %s to %s, manifest written %s, %d workloads",
		m.Generation, status.Release(rep.FromKernel), status.Release(rep.ToKernel), m.Written.Format(time.RFC3339), len(m.Workloads))
	if want := m.NextKernel.Release; want != "" && want != rep.ToKernel {
		b.log.Printf("the manifest was written for kernel %s but this is %s: the image at the kexec was not the one checked", want, status.Release(rep.ToKernel))
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

// retrieve gets every fd and session of the manifest back through the
// device load opened, and the freeze record from luoinit's own session.
func (b *boot) retrieve(src *source, m *manifest.Manifest) *retrieved {
	ret := retrieve(src.dev, m, b.log, b.tl)
	// Before any workload starts: /dev/liveupdate admits one opener, and
	// a workload may manage sessions of its own.
	src.dev.Close()
	ret.RecordData = retrieveRecord(src.own, b.log)
	b.tl.Mark(PhaseRecord)
	return ret
}

// noteLost logs every fd that did not come back; any makes the state
// end degraded.
func (b *boot) noteLost(ret *retrieved) {
	b.rep.LostFDs = ret.Lost
	for _, l := range ret.Lost {
		b.log.Printf("%s", l)
	}
	b.rep.restored = ret.Workloads
	b.toDeliver = map[string]int{}
	for _, w := range ret.Workloads {
		b.toDeliver[w.Spec.Name] = len(w.Files)
	}
}

// run starts the workloads and hands each its fds; meanwhile the freeze
// record is parsed (blackout figures only) and the sessions left to their
// owners are watched. It returns once every first handoff ended and the
// owned sessions are settled.
func (b *boot) run(m *manifest.Manifest, ret *retrieved) {
	timeout := b.o.Supervisor.HandoffTimeout
	if timeout == 0 {
		timeout = defaultHandoffTimeout
	}
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		newLeaveWatch(ret.Workloads).run(time.Now().Add(timeout))
	}()
	b.rep.Supervisor = newSupervisor(b.o.Start, b.log, b.o.Supervisor)
	recDone := b.beside("freeze record: panic while parsing it", func() { ret.parseRecord(b.log) })
	b.rep.Results = b.rep.Supervisor.Run(ret.Workloads)
	b.rep.done = BootTime()
	<-recDone
	if ret.Record != nil {
		m.ApplyRecord(*ret.Record)
		b.rep.Timing = m.Timing
	}
	<-watched
	settleOwned(ret.Workloads, b.rep.Results, timeout, b.log)
}

// end writes the final state: degraded means data was lost or could not
// be delivered; a workload that had nothing to receive and did no handoff
// degrades nothing, and neither does one that got its fds but never said
// READY=1 (the report and the state file say so).
func (b *boot) end(ret *retrieved) {
	end := status.Finished
	if len(b.rep.LostFDs) > 0 {
		end = status.Degraded
	}
	for i, r := range b.rep.Results {
		w := ret.Workloads[i]
		if (r.Err != nil && b.toDeliver[r.Workload] > 0) || (hasFDs(w.Spec) && r.Delivered > 0 && !r.Finished) {
			end = status.Degraded
		}
		for _, ow := range w.Owned {
			if ow.Result == status.SessionLost || ow.Result == status.SessionUndelivered {
				end = status.Degraded
			}
		}
	}
	b.rep.Phases = b.tl.Phases()
	<-b.copied
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
		o.Log.Printf("network: %v", err)
	}
	rep.NetworkChanges, rep.NetworkFailures, rep.Network = changes, len(errs), took
	o.Log.Printf("network: %s applied, %d changes, %d failures, in %v", what, changes, len(errs), took.Round(time.Microsecond))
}

// coldBoot starts the config's workloads with nothing to hand over (they
// still get the handoff socket, and receive zero fds).
func coldBoot(o BootOptions, rep *Report, log ulog.Logger) (*Report, error) {
	cfg, err := manifest.LoadConfig(o.Config)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			applyNetwork(o, rep, manifest.Network{}, "loopback only")
			log.Printf("no manifest and no config (%s): no workloads to start", o.Config)
			rep.Phases = o.Timeline.Phases()
			if err := writeState(o.StateDir, rep); err != nil {
				log.Printf("state file: %v", err)
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
	rep.restored = ws
	log.Printf("cold boot: starting %d workloads of %s", len(ws), o.Config)
	rep.Supervisor = newSupervisor(o.Start, log, o.Supervisor)
	rep.Results = rep.Supervisor.Run(ws)
	rep.done = BootTime()
	rep.Phases = o.Timeline.Phases()
	if err := writeState(o.StateDir, rep); err != nil {
		log.Printf("state file: %v", err)
	}
	return rep, nil
}

// writeState writes the state file (package status) from the report.
func writeState(dir string, r *Report) error {
	return status.Write(dir, r.record())
}

// record brings the report's record up to date from what the boot did so
// far, and returns a copy of it to write.
//
// The blackout is the time the workloads were out of service: from the
// first workload stopped to the reboot call, measured in the old kernel
// (Timing), plus the new kernel's CLOCK_BOOTTIME when the last workload
// acknowledged (LastReady). The gap between the reboot call and the new
// kernel's start is seen by neither clock. Zero if either is unknown.
func (r *Report) record() *status.Status {
	st := &r.Status
	st.Lost = len(r.LostFDs)
	st.Workloads = nil
	// Figures, once the first handoffs are over.
	if r.done > 0 {
		if r.retrieved > 0 {
			st.Restore = r.retrieved - st.Init
		}
		st.HandoffDone = r.done - st.Init
		st.LastReady = 0
		for _, res := range r.Results {
			st.LastReady = max(st.LastReady, res.AckedAt)
		}
		st.OldKernelBlackout, st.Blackout = r.Timing.Blackout(), 0
		if st.OldKernelBlackout > 0 && st.LastReady > 0 {
			st.Blackout = st.OldKernelBlackout + st.LastReady
		}
	}
	results := map[string]Result{}
	for _, res := range r.Results {
		results[res.Workload] = res
	}
	for _, w := range r.restored {
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
	cp := *st
	return &cp
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
