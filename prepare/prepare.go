// Package prepare is the pre-kexec half of luoinit: it collects the fds of
// running workloads, preserves them in LUO sessions, seals the manifest
// into luoinit's own session (package carry), loads the next kernel with
// the initramfs it is given, byte for byte, and, after quiescing the
// workloads, reboots into it.
//
//	cfg, err := manifest.LoadConfig("/etc/luoinit/config.toml")
//	err = prepare.Run(ctx, prepare.Options{Config: cfg, Kernel: "/boot/vmlinuz-next", Initrd: "/boot/luoinit.img"})
//
// Everything expensive happens while the workloads still run (phase
// "prepared"); the freeze only stops them, records two timestamps and
// calls reboot(LINUX_REBOOT_CMD_KEXEC). Any failure or a cancel before the
// reboot closes the sessions (the kernel unpreserves their files), unloads
// the kexec image and resumes stopped workloads.
package prepare

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/luo"
	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/preflight"
	"github.com/luoinit/luoinit/status"
	"github.com/luoinit/luoinit/wellknown"
	"github.com/u-root/uio/ulog"
	"golang.org/x/sys/unix"
)

// DefaultInitrd is the image the running kernel booted from, which the
// kernel keeps there when booted with retain_initrd.
const DefaultInitrd = "/sys/firmware/initrd"

// defaultInitrd is DefaultInitrd; tests point it elsewhere.
var defaultInitrd = DefaultInitrd

// ErrCancelled is wrapped by the error of a prepare that was cancelled.
var ErrCancelled = errors.New("prepare cancelled")

// Options says what to prepare and how.
type Options struct {
	Config *manifest.Config

	Kernel string // the next kernel (bzImage)
	// Initrd is the next kernel's initramfs, loaded as it is; ""
	// means DefaultInitrd.
	Initrd       string
	Append       string // kernel command line (after the reused one, if ReuseCmdline)
	ReuseCmdline bool
	// RunningKernel is the running kernel's image, for the preflight's
	// comparison; "" lets the preflight find what it can.
	RunningKernel string

	Socket         string        // where socket-mode workloads push their fds
	CollectTimeout time.Duration // how long to wait for them; default 30s
	Device         string        // default luo.DefaultPath
	PrevManifest   string        // the running system's manifest, for the generation; default wellknown.ManifestCopy

	DryRun   bool // everything but stopping and rebooting; print the manifest; then cancel
	LogFDs   bool // a line per preserved fd; without it, a line per workload
	NoReboot bool // stop after prepared; SIGUSR1 (Continue) goes on, ctx cancel cancels

	// Continue is read in NoReboot mode: a value means go on and reboot.
	Continue <-chan struct{}
	Log      ulog.Logger // progress lines, one per call; default stderr

	Out io.Writer // the manifest in DryRun; default os.Stdout

	// Procs is what an init that started the workloads knows: the pid of
	// each running workload by name. With it, workloads are stopped by the
	// pid the init started, and workloads without fds are stopped too.
	Procs map[string]int
	// Freezing is called just before the workloads are stopped, and
	// Cancelled when a prepare is cancelled (an init holds and releases
	// its restarts with them).
	Freezing, Cancelled func()
	// FDStore is what an init that keeps the workloads' fd stores
	// (sd_notify FDSTORE=1) has for one workload: a dup of each stored fd
	// with its FDNAME, in store order. prepare owns and closes the files.
	// nil outside such an init (a --standalone prepare).
	FDStore func(workload string) []handoff.File
	// Requester is the pid of the process that asked for this live update
	// (the `luoinit prepare` command); 0 if unknown. The workload whose
	// process tree holds it is stopped with SIGSTOP, not asked to exit:
	// it is waiting for this very reboot, and the freeze must not wait
	// on it.
	Requester int
	// RunCommand runs a workload's stop_command as the workload and waits
	// at most timeout for it (an init's own way of starting programs);
	// an error means it did not exit with status 0. Needed only when a
	// workload has a stop_command.
	RunCommand func(w *manifest.Workload, timeout time.Duration) error
	// StateDir holds the state file (package status) that prepare moves to
	// prepared and frozen, and back on cancel; default wellknown.RunDir.
	StateDir string

	// reboot is replaced in tests; default reboot(LINUX_REBOOT_CMD_KEXEC).
	reboot func() error
}

// state is one prepare in progress; cancel undoes what it holds.
type state struct {
	o         Options
	m         *manifest.Manifest
	sessions  []*luo.Session
	procs     []*process
	kexecDone bool
	files     []*os.File // fds received or taken from workloads
	listener  *handoff.Listener
	own       *luo.Session    // luoinit's own session (package carry)
	record    *os.File        // the freeze record memfd
	owned     []*ownedSession // workload-owned sessions held until the reboot
	holders   []holder        // processes found holding them, stopped at the freeze
	prevState *stateSave      // the state file before prepare changed it
	next      *preflight.Image
	log       ulog.Logger // o.Log, each line prefixed "prepare: "
}

// newState starts a prepare's state; o.Log is set.
func newState(o Options) *state { return &state{o: o, log: prefixed{o.Log, "prepare: "}} }

// prefixed is a logger that starts every line with prefix.
type prefixed struct {
	l      ulog.Logger
	prefix string
}

func (p prefixed) Printf(format string, args ...any) { p.l.Printf(p.prefix+format, args...) }

// Run prepares a live update and reboots into it. It returns only if the
// prepare failed, was cancelled, was a dry run, or the reboot failed; in
// every case nothing stays preserved or loaded.
func Run(ctx context.Context, o Options) (err error) {
	if o.Log == nil {
		o.Log = log.New(os.Stderr, "", 0)
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Socket == "" {
		o.Socket = wellknown.PushSocket
	}
	if o.Device == "" {
		o.Device = luo.DefaultPath
	}
	if o.CollectTimeout == 0 {
		o.CollectTimeout = 30 * time.Second
	}
	if o.StateDir == "" {
		o.StateDir = wellknown.RunDir
	}
	if o.PrevManifest == "" {
		o.PrevManifest = wellknown.ManifestCopy
	}
	if o.reboot == nil {
		o.reboot = func() error {
			if err := unix.Reboot(unix.LINUX_REBOOT_CMD_KEXEC); err != nil {
				return fmt.Errorf("reboot(LINUX_REBOOT_CMD_KEXEC): %w", err)
			}
			return nil
		}
	}
	s := newState(o)
	defer func() {
		if err != nil || o.DryRun {
			undone := s.cancel()
			if err != nil {
				err = fmt.Errorf("%w: %w; %s", ErrCancelled, err, undone)
			} else {
				s.log.Printf("dry run done; %s", undone)
			}
		}
	}()
	if err := s.check(); err != nil {
		return err
	}
	if err := s.prepared(ctx); err != nil {
		return err
	}
	s.setState(status.Prepared)
	if o.DryRun {
		b, err := s.m.Marshal()
		if err != nil {
			return err
		}
		o.Out.Write(b)
		return nil
	}
	if o.NoReboot {
		s.log.Printf("prepared; holding the sessions until SIGUSR1 (reboot) or SIGTERM (cancel)")
		select {
		case <-o.Continue:
			s.log.Printf("SIGUSR1: going on with the reboot")
		case <-ctx.Done():
			return fmt.Errorf("cancelled while prepared: %w", context.Cause(ctx))
		}
	}
	return s.frozen()
}

// check validates the inputs before anything is touched.
func (s *state) check() error {
	o := s.o
	if o.Config == nil {
		return errors.New("no config")
	}
	if err := o.Config.Validate(); err != nil {
		return err
	}
	if err := s.checkFDStore(); err != nil {
		return err
	}
	for _, w := range o.Config.Workloads {
		if len(w.StopCommand) > 0 && o.RunCommand == nil {
			return fmt.Errorf("workload %q has a stop_command, and this prepare has no way to run it", w.Name)
		}
	}
	if o.Kernel == "" {
		return errors.New("no kernel given (--kernel)")
	}
	if o.Initrd == "" {
		if _, err := os.Stat(defaultInitrd); err != nil {
			return fmt.Errorf("no initramfs for the next kernel: give --initrd FILE, or boot with retain_initrd so that %s holds the image this kernel booted from (%w)", DefaultInitrd, err)
		}
		s.o.Initrd = defaultInitrd
		o.Initrd = defaultInitrd
	}
	for _, f := range []struct{ what, path string }{{"kernel", o.Kernel}, {"initrd", o.Initrd}} {
		if f.path == "" {
			continue
		}
		st, err := os.Stat(f.path)
		if err != nil {
			return fmt.Errorf("%s: %w", f.what, err)
		}
		if !st.Mode().IsRegular() || st.Size() == 0 {
			return fmt.Errorf("%s %s: not a non-empty regular file", f.what, f.path)
		}
	}
	return s.preflight()
}

// prepared runs phase "prepared": fds collected and preserved, manifest
// sealed into luoinit's own session, next kernel loaded.
func (s *state) prepared(ctx context.Context) error {
	o := s.o
	start := manifest.Now()
	s.m = o.Config.NewManifest()
	s.m.Timing.PrepareStart = start
	prev, _, err := previous(o.PrevManifest)
	if err != nil {
		s.log.Printf("previous manifest unreadable (%v); counting this as generation 1", err)
	}
	s.m.Generation = nextGeneration(prev, readCmdline())
	var uts unix.Utsname
	if err := unix.Uname(&uts); err == nil {
		s.m.KernelRelease = unix.ByteSliceToString(uts.Release[:])
	}
	if s.next != nil {
		s.m.NextKernel = manifest.NextKernel{Release: s.next.Release(), Compatible: s.next.Compatibles()}
	}
	s.log.Printf("phase prepared: %d workloads, generation %d, kernel %s -> %s", len(s.m.Workloads), s.m.Generation, s.m.KernelRelease, o.Kernel)
	// Before anything is preserved: a refused session leaves all as it was.
	if err := s.findOwned(); err != nil {
		return err
	}

	dev, err := luo.Open(o.Device)
	if errors.Is(err, unix.EIO) {
		return fmt.Errorf("%w: the kernel could not deserialise the sessions this boot came with, and refuses every open until the next cold boot: no live update can be prepared before then", err)
	}
	if err != nil {
		return err
	}
	// /dev/liveupdate admits one opener: hold it only while sessions are
	// being created. The sessions stay valid after it is closed.
	defer dev.Close()
	if err := s.collect(ctx, dev); err != nil {
		return err
	}
	s.recordOwned()
	s.stopHolders()
	if err := s.createOwn(dev); err != nil {
		return err
	}
	dev.Close()
	s.m.Timing.Preserved = manifest.Now()
	s.snapshotNetwork()
	s.log.Printf("all fds preserved in %v", time.Duration(s.m.Timing.Preserved.MonotonicNS-start.MonotonicNS).Round(time.Millisecond))

	s.m.Written = time.Now().UTC().Truncate(time.Second)
	if err := s.carryManifest(); err != nil {
		return err
	}
	cmd := Cmdline(readCmdline(), o.ReuseCmdline, o.Append, s.m.Generation)
	if err := kexecLoad(o.Kernel, o.Initrd, cmd); err != nil {
		return err
	}
	s.kexecDone = true
	s.log.Printf("loaded %s with initramfs %s as it is, command line %q", o.Kernel, o.Initrd, cmd)
	testStep("kexec-load", s.log)
	s.log.Printf("prepared in %v", time.Duration(manifest.Now().MonotonicNS-start.MonotonicNS).Round(time.Millisecond))
	return nil
}

func readCmdline() string {
	b, _ := os.ReadFile("/proc/cmdline")
	return strings.TrimSpace(string(b))
}

// frozen runs phase "frozen": stop the workloads, record the time, sync,
// reboot into the loaded kernel with the sessions still open.
func (s *state) frozen() error {
	s.setState(status.Frozen)
	if s.o.Freezing != nil {
		s.o.Freezing()
	}
	// The freeze starts with the stop commands: a workload saving itself
	// is out of service already.
	first := manifest.Now()
	if err := s.runStopCommands(); err != nil {
		return err
	}
	s.log.Printf("phase frozen: stopping %d workload processes", len(s.procs))
	s.sparesRequester()
	// All at once: the freeze lasts as long as the slowest workload takes
	// to exit, not as long as all of them one after another.
	errs := make([]error, len(s.procs))
	var wg sync.WaitGroup
	for i, p := range s.procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.stop(s.log)
		}()
	}
	wg.Wait()
	exited := manifest.Now()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("stopping workload %q: %w", s.procs[i].workload, err)
		}
	}
	unix.Sync()
	reboot := manifest.Now()
	if err := s.writeRecord(first, reboot); err != nil {
		return err
	}
	// The freeze is the workloads' own exit and luoinit's steps around it
	// (signals, sync, record): said apart, so that either can be judged.
	took := time.Duration(reboot.MonotonicNS - first.MonotonicNS)
	exiting := time.Duration(exited.MonotonicNS - first.MonotonicNS)
	s.log.Printf("rebooting into the next kernel (freeze took %v: waiting for the workloads to exit %v, luoinit's own steps %v)",
		took.Round(time.Microsecond), exiting.Round(time.Microsecond), (took - exiting).Round(time.Microsecond))
	return s.o.reboot()
}

// cancel undoes everything held and says what it did.
func (s *state) cancel() string {
	var did []string
	if s.o.Cancelled != nil {
		defer s.o.Cancelled()
	}
	if s.listener != nil {
		s.listener.Close()
	}
	for _, p := range s.procs {
		if p.stopped {
			if err := p.resume(); err != nil {
				did = append(did, fmt.Sprintf("resuming workload %q failed: %v", p.workload, err))
			} else {
				did = append(did, fmt.Sprintf("workload %q resumed", p.workload))
			}
		} else if p.killed {
			did = append(did, fmt.Sprintf("workload %q was already terminated", p.workload))
		}
		p.close()
	}
	if n := len(s.sessions); n > 0 {
		for _, sess := range s.sessions {
			sess.Close()
		}
		did = append(did, fmt.Sprintf("%d sessions closed (nothing stays preserved)", n))
		s.sessions = nil
	}
	for _, f := range s.files {
		f.Close()
	}
	s.files = nil
	if n := len(s.owned); n > 0 {
		for _, o := range s.owned {
			o.file.Close()
		}
		did = append(did, fmt.Sprintf("%d workload sessions let go (each stays preserved while its workload holds it)", n))
		s.owned = nil
	}
	if s.prevState != nil {
		if err := s.prevState.restore(); err != nil {
			did = append(did, fmt.Sprintf("restoring the state file failed: %v", err))
		} else {
			did = append(did, fmt.Sprintf("state back to %s", s.prevState.was()))
		}
		s.prevState = nil
	}
	if s.kexecDone {
		if err := kexecUnload(); err != nil {
			did = append(did, fmt.Sprintf("unloading the kexec image failed: %v", err))
		} else {
			did = append(did, "kexec image unloaded")
		}
		s.kexecDone = false
	}
	if len(did) == 0 {
		return "nothing was held"
	}
	return strings.Join(did, ", ")
}
