package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/luoinit/luoinit/control"
	"github.com/luoinit/luoinit/luo"
	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/pid1"
	"github.com/luoinit/luoinit/prepare"
	"github.com/luoinit/luoinit/status"
	"github.com/luoinit/luoinit/wellknown"
	"github.com/u-root/uio/ulog"
)

const prepareUsage = `luoinit prepare --config FILE --kernel BZIMAGE [--initrd IMG] [options]

Preflight, before anything is touched: the checks of 'luoinit preflight'
(the next kernel loadable, with LUO and KHO, reading the state formats the
running kernel writes, its command line turning live update on, memory);
a failed check ends prepare with nothing preserved, stopped or loaded.
Phase prepared (the workloads keep running): open /dev/liveupdate; take the
fds of every workload of the config, pushed over the handoff socket
(handoff = "socket"), taken from the process with pidfd_getfd
(handoff = "pidfd") or, when PID 1 answers, the memfds of its fd store
(handoff = "fdstore"); preserve each in the workload's LUO session; seal the
manifest into a memfd preserved in luoinit's own session ("luoinit", token
0); load the next kernel with kexec_file_load, with the initramfs as it is
(--initrd, else /sys/firmware/initrd: the image this kernel booted from,
kept by a kernel booted with retain_initrd) and luoinit.update=GENERATION
on its command line.
Phase frozen: run the stop_command of every workload that has one (all at
once, each as its workload, bounded by its stop_timeout; one that fails
cancels the update before any workload is stopped), stop the workloads
(SIGTERM then SIGKILL after stop_timeout, or SIGSTOP; the workload this
command runs under, if any, gets SIGSTOP: it waits for this reboot), sync,
and reboot(LINUX_REBOOT_CMD_KEXEC) with the sessions still open.

A failure, SIGINT or SIGTERM at any point before the reboot cancels: the
sessions are closed (the kernel unpreserves their files), the kexec image is
unloaded, stopped workloads are resumed, and luoinit exits 1 saying so.
An fd LUO refuses fails prepare before anything is stopped, unless the
config marks it optional; then it is left out and recorded as dropped.`

func cmdPrepare(args []string) error {
	fs := newFlags("prepare", prepareUsage)
	config := fs.String("config", "", "the workload config `FILE` (required)")
	kernel := fs.String("kernel", "", "the next kernel `BZIMAGE` (required)")
	initrd := fs.String("initrd", "", "the next kernel's initramfs `IMG`, loaded as it is (default "+prepare.DefaultInitrd+", the image this kernel booted from when booted with retain_initrd)")
	appendArgs := fs.String("append", "", "kernel command line `ARGS` for the next kernel (liveupdate=on, kho=on and luoinit.update=GENERATION are always ensured)")
	reuse := fs.Bool("reuse-cmdline", false, "start from the running kernel's /proc/cmdline, then add --append")
	running := fs.String("running-kernel", "", "the running kernel's `IMAGE`, for the preflight to compare the next kernel's compatible strings with (default: what luoinit recorded, or /boot/vmlinuz-$(uname -r))")
	socket := fs.String("socket", wellknown.PushSocket, "unix socket `PATH` where socket-mode workloads push their fds")
	collect := fs.Duration("collect-timeout", 0, "how long to wait for socket-mode workloads (default 30s)")
	device := fs.String("device", luo.DefaultPath, "the LUO device `PATH`")
	dryRun := fs.Bool("dry-run", false, "do everything but stopping workloads and rebooting, print the manifest, then cancel")
	noReboot := fs.Bool("no-reboot", false, "stop after phase prepared and hold the sessions until SIGUSR1 (reboot) or SIGTERM (cancel)")
	logFDs := fs.Bool("log-fds", false, "log a line per preserved fd (default: a line per workload, and progress on long work)")
	standalone := fs.Bool("standalone", false, "prepare in this process even when luoinit runs as PID 1 (which otherwise does the work: it owns the workloads)")
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	switch {
	case *config == "":
		return usagef("prepare: --config FILE is required")
	case *kernel == "":
		return usagef("prepare: --kernel BZIMAGE is required")
	case fs.NArg() > 0:
		return usagef("prepare: unexpected argument %q", fs.Arg(0))
	case *dryRun && *noReboot:
		return usagef("prepare: --dry-run and --no-reboot exclude each other")
	}
	req := control.Request{
		Config: abs(*config), Kernel: abs(*kernel), Initrd: abs(*initrd),
		Append: *appendArgs, ReuseCmdline: *reuse, CollectTimeout: *collect, DryRun: *dryRun, NoReboot: *noReboot,
		RunningKernel: abs(*running), LogFDs: *logFDs,
	}

	// SIGINT and SIGTERM cancel; SIGUSR1 continues a --no-reboot prepare.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	cont := make(chan struct{})
	go func() { <-usr1; close(cont) }()

	if !*standalone && os.Getpid() != 1 {
		handed, err := handToPID1(wellknown.ControlSocket, req, cont, ctx.Done())
		if handed || err != nil {
			return err
		}
	}
	cfg, err := manifest.LoadConfig(req.Config)
	if err != nil {
		return err
	}
	o := prepareOptions(req, cfg)
	o.Socket, o.Device = *socket, *device
	o.Continue, o.Log, o.Out = cont, lineLogger(stderr), stdout
	o.Requester = os.Getpid()
	if slices.ContainsFunc(cfg.Workloads, func(w manifest.Workload) bool { return len(w.StopCommand) > 0 }) {
		// A stop_command's child is reaped by the one wait4 of the process,
		// as in PID 1 (pid1.Reaper).
		o.RunCommand = starter{pid1.NewReaper(lineLogger(stderr))}.runStopCommand
	}
	if err := prepare.Run(ctx, o); err != nil {
		return err
	}
	if !*dryRun {
		return errors.New("reboot returned without error")
	}
	fmt.Fprintln(stderr, "prepare: dry run complete")
	return nil
}

// handToPID1 hands the prepare to luoinit as PID 1 if it runs, and says
// whether it did. When luoinit is PID 1 but does not answer, it refuses to
// go on: a prepare run here would know none of PID 1's workloads, stop
// none of them and hold none of their restarts. --standalone is the way
// to want that.
func handToPID1(socket string, req control.Request, cont, cancel <-chan struct{}) (bool, error) {
	isPID1, why := luoinitIsPID1(pid1Exe, selfExe, filepath.Join(wellknown.RunDir, "state"))
	if _, err := os.Stat(socket); err != nil {
		if isPID1 {
			return false, fmt.Errorf("luoinit runs as PID 1 (%s) but its control socket %s is not there (%v); it may still be starting: try again, or prepare here with --standalone", why, socket, err)
		}
		return false, nil
	}
	fmt.Fprintf(stderr, "prepare: handing the work to luoinit (PID 1), which owns the workloads (--standalone to do it here)\n")
	code, err := control.Prepare(socket, req, stderr, cont, cancel)
	if err != nil {
		if errors.Is(err, control.ErrNoServer) {
			return false, fmt.Errorf("%w; not preparing here, where none of PID 1's workloads are known: try again, or prepare here with --standalone", err)
		}
		return false, err
	}
	if code != 0 {
		return true, exitError{code}
	}
	return true, nil
}

// Where luoinitIsPID1 looks.
const (
	pid1Exe = "/proc/1/exe"
	selfExe = "/proc/self/exe"
)

// luoinitIsPID1 reports whether PID 1 is luoinit, and how that is known:
// PID 1 runs this very binary, or luoinit's restore wrote the state file
// (it does so at every boot, before any workload starts, with its start
// time, init_boottime_ns, which only PID 1 writes; /run does not outlive a
// boot). A state file that a `luoinit prepare` without PID 1 left (a
// killed one, say) has no start time and says nothing of PID 1.
// /proc/1/exe is readable only to root; the state file answers for
// everyone else.
func luoinitIsPID1(pid1Exe, selfExe, stateFile string) (bool, string) {
	if a, err := os.Stat(pid1Exe); err == nil {
		if b, err := os.Stat(selfExe); err == nil && os.SameFile(a, b) {
			return true, pid1Exe + " is this luoinit"
		}
	}
	if st, err := status.Read(filepath.Dir(stateFile)); err == nil && st.Init > 0 {
		return true, stateFile + " was written by luoinit as PID 1"
	}
	return false, ""
}

// prepareOptions turns a request into prepare's options.
func prepareOptions(req control.Request, cfg *manifest.Config) prepare.Options {
	return prepare.Options{
		Config:         cfg,
		Kernel:         req.Kernel,
		Initrd:         req.Initrd,
		Append:         req.Append,
		ReuseCmdline:   req.ReuseCmdline,
		RunningKernel:  req.RunningKernel,
		CollectTimeout: req.CollectTimeout,
		DryRun:         req.DryRun,
		NoReboot:       req.NoReboot,
		LogFDs:         req.LogFDs,
	}
}

func abs(p string) string {
	if p == "" {
		return ""
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// lineLogger logs each call as one line to w: prepare's progress, on the
// terminal of the command that asked for it.
func lineLogger(w io.Writer) ulog.Logger { return log.New(w, "", 0) }
