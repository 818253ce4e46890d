package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/luoinit/luoinit/status"
	"github.com/luoinit/luoinit/wellknown"
)

const statusUsage = `luoinit status [--json] [--wait STATE [--timeout D]]

Print the state of live update on this system, from luoinit's state file
(/run/luoinit/state): the state, the kind of this boot, the generation (how
many live updates this system went through with luoinit), the blackout of
the last live update with its phases, and per workload its fds and
sessions delivered and lost.

States: normal (running, no live update in progress), prepared (luoinit
prepare preserved everything and loaded the next kernel), frozen (prepare
is stopping the workloads to reboot), restoring (the next kernel's PID 1 is
handing fds back), finished (every fd and session delivered or left to its
owner), degraded (data was lost or could not be delivered).

--wait STATE blocks until the state file says STATE, woken by inotify on
its directory (a kernel without inotify makes it read the file every
50 ms instead); with --json it then prints the status.

Exit status:
  0  printed; or STATE reached
  1  error (the state file cannot be read or parsed)
  2  usage error
  3  --wait: the timeout passed first
  4  no state file: luoinit did not boot this system and no luoinit
     prepare ran on it (with --wait: not even the directory exists)
  5  --wait finished or degraded: the restore ended in the other one`

// Exit statuses of luoinit status beyond 0, 1 and 2.
const (
	exitTimeout  = 3
	exitNoState  = 4
	exitOtherEnd = 5
)

func cmdStatus(args []string) error {
	fs := newFlags("status", statusUsage)
	asJSON := fs.Bool("json", false, "print the status as JSON")
	wait := fs.String("wait", "", "block until the state is `STATE`")
	timeout := fs.Duration("timeout", 0, "with --wait: give up after `D` (exit 3); 0 waits for ever")
	dir := fs.String("dir", wellknown.RunDir, "the state file's `DIR`")
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usagef("status: unexpected argument %q", fs.Arg(0))
	case *wait != "" && !status.Valid(status.State(*wait)):
		return usagef("status: --wait %q: the states are %s", *wait, strings.Trim(strings.Join(strings.Fields(fmt.Sprint(status.States)), ", "), "[]"))
	case *timeout != 0 && *wait == "":
		return usagef("status: --timeout needs --wait")
	case *timeout < 0:
		return usagef("status: --timeout %v is negative", *timeout)
	}
	var st *status.Status
	var err error
	if *wait != "" {
		ctx := context.Background()
		if *timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, *timeout)
			defer cancel()
		}
		st, err = status.Wait(ctx, *dir, status.State(*wait))
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			now := "no state file"
			if st != nil {
				now = "the state is " + string(st.State)
			}
			fmt.Fprintf(stderr, "luoinit status: %s not reached within %v (%s)\n", *wait, *timeout, now)
			return exitError{exitTimeout}
		case errors.Is(err, status.ErrOtherEnd):
			fmt.Fprintf(stderr, "luoinit status: %v\n", err)
			return exitError{exitOtherEnd}
		}
	} else {
		st, err = status.Read(*dir)
	}
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(stderr, "luoinit status: no state file at %s: luoinit did not boot this system and no luoinit prepare ran on it\n", status.Path(*dir))
		return exitError{exitNoState}
	}
	if err != nil {
		return err
	}
	if *asJSON {
		b, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", b)
		return nil
	}
	if *wait != "" {
		fmt.Fprintf(stdout, "state %s\n", st.State)
		return nil
	}
	printStatus(stdout, st)
	return nil
}

// printStatus writes st for a person.
func printStatus(w io.Writer, st *status.Status) {
	fmt.Fprintf(w, "state %s (boot %s, generation %d)\n", st.State, st.Boot, st.Generation)
	switch {
	case st.Reason != "" && st.State == status.Failed:
		fmt.Fprintf(w, "PID 1 failed before starting any workload: %s\n", st.Reason)
	case st.Reason != "":
		fmt.Fprintf(w, "the live update's state did not come back: %s\n", st.Reason)
	}
	if st.FromKernel != "" || st.ToKernel != "" {
		fmt.Fprintf(w, "updated from kernel %s to %s\n", status.Release(st.FromKernel), status.Release(st.ToKernel))
	}
	ms := func(d time.Duration) string { return d.Round(time.Microsecond).String() }
	if st.Blackout > 0 {
		fmt.Fprintf(w, "last blackout %s: old kernel %s (first workload stopped -> reboot call), new kernel %s (boot -> last workload back)\n",
			ms(st.Blackout), ms(st.OldKernelBlackout), ms(st.LastReady))
	}
	if st.HandoffDone > 0 {
		fmt.Fprintf(w, "restore: fds retrieved %s after init start, first handoffs over at %s; network %d changes, %d failures in %s\n",
			ms(st.Restore), ms(st.HandoffDone), st.NetworkChanges, st.NetworkFailures, ms(st.Network))
	}
	fmt.Fprintf(w, "lost: %d\n", st.Lost)
	for _, wl := range st.Workloads {
		fmt.Fprintf(w, "workload %s (handoff %s", wl.Name, wl.Handoff)
		if wl.Pid > 0 {
			fmt.Fprintf(w, ", pid %d", wl.Pid)
		}
		fmt.Fprintf(w, "): %d of %d fds delivered", wl.FDsDelivered, wl.FDs)
		if wl.Ready > 0 {
			fmt.Fprintf(w, ", back at %s", ms(wl.Ready))
		}
		if wl.Error != "" {
			fmt.Fprintf(w, "; handoff: %s", wl.Error)
		}
		fmt.Fprintln(w)
		for _, l := range wl.LostFDs {
			fmt.Fprintf(w, "  lost fd %q (session %q token %d): %s\n", l.FD, l.Session, l.Token, l.Error)
		}
		for _, s := range wl.Sessions {
			fmt.Fprintf(w, "  session %q (found via %s, %s): %s", s.Name, s.Via, s.Mode, s.Result)
			if s.Pid > 0 {
				fmt.Fprintf(w, ", pid %d", s.Pid)
			}
			if s.Error != "" {
				fmt.Fprintf(w, ": %s", s.Error)
			}
			fmt.Fprintln(w)
		}
	}
}
