// Package preflight checks, before a live update preserves or stops
// anything, that the next kernel will be able to take over the state: that
// kexec_file_load can load it, that it has KHO and LUO, that it reads the
// same versions of the state's formats as the running kernel writes, that
// its command line turns live update on, and that there is memory for it.
//
//	rep := preflight.Run(preflight.Options{Kernel: "/boot/vmlinuz-next", Cmdline: cmd})
//	for _, f := range rep.Findings {
//		fmt.Println(f) // one line each
//	}
//	if err := rep.Err(); err != nil { ... } // refuse the update
package preflight

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/luoinit/luoinit/luo"
	"github.com/luoinit/luoinit/rootfs"
	"golang.org/x/sys/unix"
)

// Status is how a finding ends.
type Status int

// The statuses. Fail refuses the update.
const (
	OK Status = iota
	Warn
	Fail
)

func (s Status) String() string {
	switch s {
	case OK:
		return "ok"
	case Warn:
		return "warn"
	}
	return "FAIL"
}

// Finding is one check's outcome, printed on one line.
type Finding struct {
	Check  string // what was checked: "image", "LUO", "command line", ...
	Status Status
	Text   string
}

func (f Finding) String() string { return fmt.Sprintf("%-4s %s: %s", f.Status, f.Check, f.Text) }

// Recorded is what luoinit wrote about a kernel when it loaded it (the
// manifest's next_kernel).
type Recorded struct {
	Release    string
	Compatible []string
	From       string // where it was read, for messages
}

// Options says what to check.
type Options struct {
	Kernel string // the next kernel's image (required)
	// Initrd is the next initramfs, checked to be one the next kernel
	// reads and counted in the memory check; "" leaves it out.
	Initrd string
	// Cmdline is the next kernel's command line as it will be loaded;
	// Given is what the operator asked for before luoinit ensured
	// liveupdate=on and kho=on (only used to say what was replaced).
	Cmdline, Given string
	// RunningKernel is the running kernel's image; "" looks for the
	// record and /boot/vmlinuz-<release>.
	RunningKernel string
	// Recorded is the previous live update's record of the kernel it
	// loaded; used if its release is the running one's.
	Recorded *Recorded
	Device   string // the LUO device; default luo.DefaultPath

	root string // tests: prefix of /proc, /sys, /boot and the device
	// release is the running kernel's; tests set it, default uname -r.
	release string
	// findRoot finds root='s device; tests set it, default rootfs.Find.
	findRoot func(rootfs.Spec) (string, error)
}

// Running is what the preflight knows of the running kernel.
type Running struct {
	Release string
	Compat  map[string]string // ABI prefix -> compatible string
	Source  string            // where Compat came from; "" if unknown
	// Complete: Compat came from an image or a record, so an ABI it lacks
	// is one the running kernel does not write (debugfs shows only some).
	Complete bool
}

// Report is the outcome of Run.
type Report struct {
	Findings []Finding
	Next     *Image // nil if the image could not be read
	Running  Running
}

func (r *Report) add(check string, st Status, format string, args ...any) {
	r.Findings = append(r.Findings, Finding{Check: check, Status: st, Text: fmt.Sprintf(format, args...)})
}

// ErrRefused is wrapped by Report.Err.
var ErrRefused = errors.New("preflight refused the live update")

// Err is nil if no finding failed; otherwise it names every failed check
// and says what the update would have cost.
func (r *Report) Err() error {
	var failed []string
	for _, f := range r.Findings {
		if f.Status == Fail {
			failed = append(failed, f.Check+": "+f.Text)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s; the live update would lose the preserved state", ErrRefused, strings.Join(failed, "; "))
}

// Run runs every check and returns the findings. It reads files and
// /proc; it opens nothing exclusive and changes nothing.
func Run(o Options) *Report {
	if o.Device == "" {
		o.Device = luo.DefaultPath
	}
	if o.release == "" {
		var uts unix.Utsname
		if err := unix.Uname(&uts); err == nil {
			o.release = unix.ByteSliceToString(uts.Release[:])
		}
	}
	r := &Report{}
	r.checkDevice(o)
	r.readNext(o)
	r.readRunning(o)
	r.checkABIs()
	r.checkConfig()
	r.checkInitrd(o)
	r.checkCmdline(o)
	r.checkRoot(o)
	r.checkMemory(o)
	return r
}

func (o *Options) path(p string) string { return filepath.Join(o.root, p) }

// checkDevice: the running kernel has LUO turned on.
func (r *Report) checkDevice(o Options) {
	if _, err := os.Stat(o.path(o.Device)); err != nil {
		r.add("running kernel", Fail, "%s %s: no LUO device: this kernel was booted without liveupdate=on or built without CONFIG_LIVEUPDATE, so nothing can be preserved (%v)",
			o.release, o.Device, errors.Unwrap(err))
		return
	}
	r.add("running kernel", OK, "%s, LUO device %s present", o.release, o.Device)
}

// readNext reads the next kernel's image.
func (r *Report) readNext(o Options) {
	if runtime.GOARCH != "amd64" {
		r.add("image", Fail, "%s: luoinit reads kernel images on x86-64 only, this is %s", o.Kernel, runtime.GOARCH)
		return
	}
	im, err := ReadImage(o.Kernel)
	if err != nil {
		r.add("image", Fail, "%v", err)
		return
	}
	r.Next = im
	p := im.Header.Protocol
	r.add("image", OK, "%s: bzImage %s, boot protocol %d.%02d, %s payload, %d KiB",
		o.Kernel, orUnknown(im.Release()), p>>8, p&0xff, im.Compression, im.Size>>10)
}

// checkABIs: each format the next kernel reads is the one the running
// kernel writes.
func (r *Report) checkABIs() {
	if r.Next == nil {
		return
	}
	for _, a := range ABIs {
		next, ambiguous := r.Next.ABI(a)
		running := r.Running.Compat[a.Prefix]
		st := Fail
		if !a.Required {
			st = Warn
		}
		switch {
		case ambiguous:
			r.add(a.Name, st, "the next kernel holds several versions (%s): cannot tell which it reads", strings.Join(r.Next.Compat[a.Prefix], ", "))
		case next == "" && a.Required:
			r.add(a.Name, Fail, "the next kernel has no %s compatible string (%sN): it was built without %s support", a.Name, a.Prefix, a.Name)
		case next == "" && running != "":
			r.add(a.Name, Warn, "the next kernel does not read %s state, which the running kernel writes (%s)", a.Name, running)
		case next == "":
			// Neither kernel has this optional format.
		case running == "" && !r.Running.Complete:
			r.add(a.Name, OK, "the next kernel reads %s (the running kernel's version unknown)", next)
		case running == "":
			r.add(a.Name, OK, "the next kernel reads %s; the running kernel writes none", next)
		case running != next:
			r.add(a.Name, st, "the next kernel reads %s but the running kernel writes %s (%s): it would refuse the %s state",
				next, running, a.Define, a.Name)
		default:
			r.add(a.Name, OK, "%s in both kernels", next)
		}
	}
}

// checkConfig reports what the embedded config says, if there is one.
func (r *Report) checkConfig() {
	if r.Next == nil {
		return
	}
	cfg := r.Next.Config
	if cfg == nil {
		r.add("config", OK, "not embedded in the image (no CONFIG_IKCONFIG): LUO, KHO and memfd support judged from the compatible strings")
		return
	}
	var missing []string
	for _, opt := range []string{"CONFIG_KEXEC_HANDOVER", "CONFIG_LIVEUPDATE", "CONFIG_LIVEUPDATE_MEMFD"} {
		if cfg[opt] != "y" {
			missing = append(missing, opt)
		}
	}
	if len(missing) > 0 {
		r.add("config", Fail, "the next kernel's config lacks %s", strings.Join(missing, ", "))
		return
	}
	def := "off by default (kho=on needed)"
	if cfg["CONFIG_KEXEC_HANDOVER_ENABLE_DEFAULT"] == "y" {
		def = "on by default"
	}
	r.add("config", OK, "embedded: KEXEC_HANDOVER, LIVEUPDATE and LIVEUPDATE_MEMFD are y; KHO %s", def)
}

func orUnknown(s string) string {
	if s == "" {
		return "(release unknown)"
	}
	return s
}
