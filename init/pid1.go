package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/luoinit/luoinit/carry"
	"github.com/luoinit/luoinit/control"
	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/notify"
	"github.com/luoinit/luoinit/pid1"
	"github.com/luoinit/luoinit/prepare"
	"github.com/luoinit/luoinit/restore"
	"github.com/luoinit/luoinit/rootfs"
	"github.com/luoinit/luoinit/status"
	"github.com/luoinit/luoinit/wellknown"
	"github.com/u-root/uio/ulog"
	"golang.org/x/sys/unix"
)

// pid1Main is luoinit as PID 1 of the next kernel's initramfs. It never
// returns: a fatal error ends in the action luoinit.fatal= names.
func pid1Main() {
	started := restore.BootTime()
	log := pid1.NewLogger(true)
	pid1.Guard(log, func() error {
		// Signals first: the Go runtime has handlers for nearly every
		// signal, so the kernel's protection of init no longer holds and
		// an unhandled SIGTERM would end PID 1, and with it the kernel.
		// Shutdown takes a nil Reaper until the real one exists.
		var reaper *pid1.Reaper
		pid1.HandleSignals(log, func(a pid1.Action) {
			pid1.Shutdown(log, reaper, a, 10*time.Second)
		})
		reaper = pid1.NewReaper(log)
		tl := restore.NewTimeline(started)
		tl.Mark(restore.PhaseSignals)
		// The code and constants mapped at once rather than a fault at a
		// time (see pid1.Prefault), on the other CPU: nothing waits for it.
		go func() {
			defer pid1.Recover(log)
			if n, err := pid1.Prefault(); err != nil {
				log.Printf("prefault: %v (after %d bytes; pages fault in as used instead)", err, n)
			}
		}()
		// Each workload's notification socket and fd store live as long
		// as PID 1: a restarted workload gets its store back, and a
		// prepare answered here preserves it. The sockets are made, under
		// /run, as the workloads start.
		stores := notify.NewRegistry(wellknown.NotifyDir, log)
		// The restore runs once /proc, /sys and /dev are mounted: the
		// command line says whether this is a live update, and the
		// manifest comes from /dev/liveupdate.
		pending := restore.Start(restore.BootOptions{
			Start:      starter{reaper},
			Log:        log,
			Started:    started,
			Timeline:   tl,
			Supervisor: restore.Options{Notify: stores},
		})
		if err := pid1.MountAll(log); err != nil {
			log.Printf("mounting: %v (going on with what is there)", err)
		}
		tl.Mark(restore.PhaseMounted)
		if _, err := pid1.RaiseFileLimit(); err != nil {
			log.Printf("file limit: %v (a workload with more than 1024 fds may not get them all)", err)
		}
		// The root (root=) before anything else: the config, the workloads'
		// programs and the control socket's clients live there, and
		// /dev/liveupdate is not opened until PID 1 is in it, so a root
		// that never comes leaves every session in the kernel's hands.
		if err := switchRoot(log); err != nil {
			return err
		}
		tl.Mark(restore.PhaseRoot)
		// The next `luoinit prepare` is answered here, from before the
		// restore: PID 1 owns the workloads, knows their pids and holds
		// their restarts. Until the first handoffs are over it answers
		// "try again", so that no prepare runs standalone meanwhile, one
		// that would know none of the workloads.
		// It starts beside the restore, not before it: nothing on the
		// restore path waits for it, and a prepare can come only once a
		// workload runs.
		var boot bootState
		go func() {
			defer pid1.Recover(log)
			if _, err := control.Listen(wellknown.ControlSocket, prepareHandler(log, boot.get, stores, starter{reaper})); err != nil {
				log.Printf("no control socket: `luoinit prepare` will refuse to run unless --standalone: %v", err)
			}
		}()
		rep, err := pending.Run()
		if err != nil {
			boot.set(nil)
			return err
		}
		report(log, rep)
		boot.set(rep.Supervisor)
		return nil // Guard keeps PID 1 alive; the reaper and supervisors go on
	})
}

// switchRoot mounts the root filesystem the kernel command line names and
// makes it PID 1's root; without root= it does nothing. On failure the
// state file says why (state failed) and the error goes to luoinit.fatal=.
func switchRoot(log ulog.Logger) error {
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return fmt.Errorf("reading the kernel command line for root=: %w", err)
	}
	root, err := rootfs.Switch(context.Background(), rootfs.Options{
		Cmdline: string(cmdline),
		Require: []string{wellknown.Config},
		Log:     log,
	})
	if err != nil {
		st := status.Status{Boot: status.BootNormal, State: status.Failed, Reason: err.Error()}
		if gen, marked, _ := carry.Marker(string(cmdline)); marked {
			st.Boot, st.Generation = status.BootUpdated, gen
			err = fmt.Errorf("%w (a live update, generation %d: no session was retrieved, they stay the kernel's while PID 1 runs)", err, gen)
		}
		if werr := status.Write(wellknown.RunDir, &st); werr != nil {
			log.Printf("state file: %v", werr)
		}
		return err
	}
	if root != nil {
		log.Printf("root: switched into %s (%s, %s) in %v, %d entries of the initramfs freed; the config is now the root's %s",
			root.Device, root.FSType, root.Spec, root.Took.Round(time.Millisecond), root.Freed, wellknown.Config)
	}
	return nil
}

// starter starts workloads through the reaper, the only place that waits
// for children.
type starter struct{ r *pid1.Reaper }

func (s starter) Start(spec manifest.Workload, env []string, extra []*os.File) (restore.Process, error) {
	p, err := s.r.Start(spec.Argv, workloadAttr(spec, env, extra))
	if err != nil {
		return nil, err
	}
	return proc{p}, nil
}

// workloadAttr is how every program of a workload runs: as its uid and
// gid, in its dir (default /), with env and a default PATH, the console
// as stdout and stderr, and extra as fds 3, 4, ....
func workloadAttr(spec manifest.Workload, env []string, extra []*os.File) *pid1.ProcAttr {
	dir := spec.Dir
	if dir == "" {
		dir = "/"
	}
	// A PATH of the config's wins: the default goes first only without one
	// (getenv(3) takes the first of a key).
	if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "PATH=") }) {
		env = append([]string{"PATH=/bin:/sbin:/usr/bin:/usr/sbin"}, env...)
	}
	return &pid1.ProcAttr{
		Env:        env,
		Dir:        dir,
		Credential: &syscall.Credential{Uid: spec.UID, Gid: spec.GID},
		ExtraFiles: extra,
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
	}
}

// runStopCommand runs workload w's stop_command as the workload (see
// workloadAttr; LUOINIT_WORKLOAD names it) and waits at most timeout for
// it, then kills its process group. It is prepare's Options.RunCommand.
func (s starter) runStopCommand(w *manifest.Workload, timeout time.Duration) error {
	env := append(slices.Clone(w.Env), wellknown.EnvWorkload+"="+w.Name)
	p, err := s.r.Start(w.StopCommand, workloadAttr(*w, env, nil))
	if err != nil {
		return err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.Done():
	case <-t.C:
		if err := p.SignalGroup(unix.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("%s (pid %d) still ran after %v, and killing it failed: %w", p.Path, p.Pid, timeout, err)
		}
		<-p.Done()
		return fmt.Errorf("%s (pid %d) still ran after %v (stop_timeout): killed", p.Path, p.Pid, timeout)
	}
	_, err = p.Wait()
	return err
}

type proc struct{ p *pid1.Proc }

func (p proc) Pid() int { return p.p.Pid }

// Done is closed when the process has been reaped.
func (p proc) Done() <-chan struct{} { return p.p.Done() }

func (p proc) Wait() int {
	ws, _ := p.p.Wait()
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// report logs what the boot did, with the figures an operator asks for
// after a live update: restore time inside init, and the blackout.
func report(log ulog.Logger, r *restore.Report) {
	var parts []string
	for _, res := range r.Results {
		s := fmt.Sprintf("%s: %d fds", res.Workload, res.Delivered)
		switch {
		case res.Ready:
			s += fmt.Sprintf(" READY=1 %v after init start", (res.AckedAt - r.Init).Round(time.Microsecond))
		case res.AckedAt > 0:
			s += fmt.Sprintf(" acked %v after init start", (res.AckedAt - r.Init).Round(time.Microsecond))
		}
		if res.ReadyErr != nil {
			s += fmt.Sprintf(", not ready: %v", res.ReadyErr)
		}
		if len(res.Lost) > 0 {
			s += fmt.Sprintf(", %d lost", len(res.Lost))
		}
		if res.Err != nil {
			s += ", handoff failed"
		}
		parts = append(parts, s)
	}
	retrieved := ""
	if r.Restore > 0 {
		retrieved = fmt.Sprintf("fds retrieved %v after init start; ", r.Restore.Round(time.Microsecond))
	}
	updated := ""
	if r.FromKernel != "" {
		updated = fmt.Sprintf(", updated from %s to %s", r.FromKernel, r.ToKernel)
	}
	log.Printf("restore report: boot %s, state %s, generation %d%s; %snetwork: %d changes, %d failures in %v; %s",
		r.Boot, r.State, r.Generation, updated, retrieved, r.NetworkChanges, r.NetworkFailures, r.Network.Round(time.Microsecond), strings.Join(parts, "; "))
	if r.Blackout > 0 {
		log.Printf("blackout: %v (old kernel, first stop to reboot call: %v; new kernel, boot to last ack: %v)",
			r.Blackout.Round(time.Microsecond), r.OldKernelBlackout.Round(time.Microsecond), r.LastReady.Round(time.Microsecond))
	}
}

// bootState is what the control socket knows of the boot: whether the
// first handoffs are over, and the supervisor of the workloads then (nil
// if none were started).
type bootState struct {
	done atomic.Bool
	sup  atomic.Pointer[restore.Supervisor]
}

func (b *bootState) set(sup *restore.Supervisor) {
	b.sup.Store(sup)
	b.done.Store(true)
}

func (b *bootState) get() (*restore.Supervisor, bool) {
	if !b.done.Load() {
		return nil, false
	}
	return b.sup.Load(), true
}

// exitTryAgain is the exit status of a prepare refused because PID 1 is
// still restoring (EX_TEMPFAIL of sysexits.h).
const exitTryAgain = 75

// prepareHandler runs a `luoinit prepare` that a command handed to PID 1.
// boot says whether the restore is over, and gives the supervisor;
// stores are the workloads' fd stores.
func prepareHandler(log ulog.Logger, boot func() (*restore.Supervisor, bool), stores *notify.Registry, start starter) control.Handler {
	return func(ctx context.Context, req control.Request, out io.Writer, cont <-chan struct{}) int {
		defer pid1.Recover(log)
		sup, ready := boot()
		if !ready {
			fmt.Fprintln(out, "luoinit: PID 1 is still restoring the workloads (their first handoffs are not over); try again in a few seconds")
			log.Printf("a `luoinit prepare` came while restoring; told to try again")
			return exitTryAgain
		}
		cfg, err := manifest.LoadConfig(req.Config)
		if err != nil {
			fmt.Fprintln(out, err)
			return 1
		}
		o := prepareOptions(req, cfg)
		o.Log, o.Out, o.Continue = lineLogger(out), out, cont
		o.FDStore = stores.FDStore
		o.Requester = req.From
		o.RunCommand = start.runStopCommand
		if sup != nil {
			o.Procs = sup.Pids()
			o.Freezing, o.Cancelled = sup.Hold, sup.Release
		}
		fmt.Fprintf(out, "prepare: answered by luoinit, PID 1, which knows %d running workloads\n", len(o.Procs))
		log.Printf("preparing a live update for a `luoinit prepare` command (kernel %s)", req.Kernel)
		if err := prepare.Run(ctx, o); err != nil {
			fmt.Fprintf(out, "luoinit: %v\n", err)
			log.Printf("live update not done: %v", err)
			return 1
		}
		if req.DryRun {
			return 0
		}
		fmt.Fprintln(out, "luoinit: reboot returned without error")
		return 1
	}
}
