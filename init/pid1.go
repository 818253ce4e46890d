package main

import (
	"context"
	"errors"
	"io"

	"fmt"
	"github.com/luoinit/luoinit/control"
	"github.com/luoinit/luoinit/prepare"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/pid1"
	"github.com/luoinit/luoinit/restore"
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
		if err := pid1.MountAll(log); err != nil {
			log.Printf("mounting: %v (going on with what is there)", err)
		}
		rep, err := restore.Boot(restore.BootOptions{
			Start:   starter{reaper},
			Log:     log.Printf,
			Started: started,
		})
		if err != nil {
			return err
		}
		report(log, rep)
		// The next `luoinit prepare` is answered here: PID 1 owns the
		// workloads, knows their pids and holds their restarts.
		if _, err := control.Listen(control.DefaultSocket, prepareHandler(log, rep.Supervisor)); err != nil {
			log.Printf("no control socket, a later prepare runs standalone: %v", err)
		}
		return nil // Guard keeps PID 1 alive; the reaper and supervisors go on
	})
}

// starter starts workloads through the reaper, the only place that waits
// for children.
type starter struct{ r *pid1.Reaper }

func (s starter) Start(spec manifest.Workload, env []string, extra []*os.File) (restore.Process, error) {
	dir := spec.Dir
	if dir == "" {
		dir = "/"
	}
	p, err := s.r.Start(spec.Argv, &pid1.ProcAttr{
		Env:        append([]string{"PATH=/bin:/sbin:/usr/bin:/usr/sbin"}, env...),
		Dir:        dir,
		Credential: &syscall.Credential{Uid: spec.UID, Gid: spec.GID},
		ExtraFiles: extra,
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
	})
	if err != nil {
		return nil, err
	}
	return proc{p}, nil
}

type proc struct{ p *pid1.Proc }

func (p proc) Pid() int { return p.p.Pid }

func (p proc) Wait() int {
	ws, _ := p.p.Wait()
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// report logs what the boot did, with the figures an operator asks for
// after a live update: restore time inside init, and the blackout.
func report(log pid1.Logger, r *restore.Report) {
	var parts []string
	for _, res := range r.Results {
		s := fmt.Sprintf("%s: %d fds", res.Workload, res.Delivered)
		if res.AckedAt > 0 {
			s += fmt.Sprintf(" acked %v after init start", (res.AckedAt - r.Started).Round(time.Microsecond))
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
	if r.Retrieved > 0 {
		retrieved = fmt.Sprintf("fds retrieved %v after init start; ", (r.Retrieved - r.Started).Round(time.Microsecond))
	}
	updated := ""
	if r.FromKernel != "" {
		updated = fmt.Sprintf(", updated from %s to %s", r.FromKernel, r.ToKernel)
	}
	log.Printf("restore report: boot %s, state %s, generation %d%s; %snetwork: %d changes, %d failures in %v; %s",
		r.Kind, r.State, r.Generation, updated, retrieved, r.NetworkChanges, r.NetworkFailures, r.NetworkTook.Round(time.Microsecond), strings.Join(parts, "; "))
	if b := r.Blackout(); b > 0 {
		log.Printf("blackout: %v (old kernel, first stop to reboot call: %v; new kernel, boot to last ack: %v)",
			b.Round(time.Microsecond), r.Timing.Blackout().Round(time.Microsecond), (b - r.Timing.Blackout()).Round(time.Microsecond))
	}
}

// prepareHandler runs a `luoinit prepare` that a command handed to PID 1.
func prepareHandler(log pid1.Logger, sup *restore.Supervisor) control.Handler {
	return func(req control.Request, out io.Writer, cancel, cont <-chan struct{}) int {
		defer pid1.Recover(log)
		cfg, err := manifest.LoadConfig(req.Config)
		if err != nil {
			fmt.Fprintln(out, err)
			return 1
		}
		ctx, stop := context.WithCancelCause(context.Background())
		defer stop(nil)
		go func() {
			select {
			case <-cancel:
				stop(errors.New("the luoinit prepare command was interrupted or went away"))
			case <-ctx.Done():
			}
		}()
		o := prepareOptions(req, cfg)
		o.Log, o.Out, o.Continue = out, out, cont
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
