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
//
// The running kernel's compatible strings: a whole set comes from the
// first of an image named by the caller (RunningKernel), what luoinit
// recorded when it loaded this kernel (the previous live update's
// manifest, if its release is this kernel's), the image at
// /boot/vmlinuz-<release>. Over that set, KHO's debugfs wins where it
// speaks (KHODebugfs, if debugfs is mounted): it is the running kernel's
// own outgoing state and shows the KHO and LUO versions (not memfd's).
// Neither /proc nor sysfs shows any of them.
package preflight

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/luoinit/luoinit/luo"
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
	// InitramfsSize is the next initramfs's size in bytes or an estimate;
	// 0 leaves it out of the memory check.
	InitramfsSize int64
	Device        string // the LUO device; default luo.DefaultPath

	root string // tests: prefix of /proc, /sys, /boot and the device
	// release is the running kernel's; tests set it, default uname -r.
	release string
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
	r.checkCmdline(o)
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

// KHODebugfs is where KHO's debugfs shows the tree the running kernel
// will hand over (CONFIG_KEXEC_HANDOVER_DEBUGFS, debugfs mounted): "fdt",
// whose root is compatible with the KHO version, and one blob per subtree
// under sub_fdts; LUO's begins with its ABI string.
const KHODebugfs = "/sys/kernel/debug/kho/out"

// readRunning finds the running kernel's compatible strings: a whole set
// from an image or the record (see the package doc for the order), and
// over it what KHO's debugfs shows, which is the running kernel's own
// outgoing state and so wins where it speaks.
func (r *Report) readRunning(o Options) {
	r.Running = Running{Release: o.release, Compat: map[string]string{}}
	var sources []string
	// fromImage reads path; an image the operator named is used even if its
	// release differs (a rebuild of the same release is exactly the case to
	// catch), one found by release only if it matches.
	fromImage := func(path string, named bool) bool {
		im, err := ReadImage(path)
		if err != nil {
			r.add("running kernel", Warn, "%v: not used", err)
			return false
		}
		source := "image " + path
		if rel := im.Release(); rel != o.release {
			if !named {
				r.add("running kernel", Warn, "%s is release %s, not the running %s: not used", path, orUnknown(rel), o.release)
				return false
			}
			source += " (release " + orUnknown(rel) + ", taken as the running kernel's as asked)"
		}
		for _, a := range ABIs {
			if c, _ := im.ABI(a); c != "" {
				r.Running.Compat[a.Prefix] = c
			}
		}
		sources = append(sources, source)
		return true
	}
	boot := o.path("/boot/vmlinuz-" + o.release)
	switch {
	case o.RunningKernel != "":
		if !fromImage(o.RunningKernel, true) {
			r.add("running kernel", Fail, "the image given for the running kernel is unreadable: nothing to compare the next kernel with")
			return
		}
	case o.Recorded != nil && o.Recorded.Release == o.release && len(o.Recorded.Compatible) > 0:
		for _, c := range o.Recorded.Compatible {
			if i := strings.LastIndex(c, "-v"); i > 0 {
				r.Running.Compat[c[:i+2]] = c
			}
		}
		sources = append(sources, "luoinit's record of loading it ("+o.Recorded.From+")")
	default:
		if _, err := os.Stat(boot); err == nil {
			fromImage(boot, false)
		}
	}
	r.Running.Complete = len(sources) > 0

	dir := o.path(KHODebugfs)
	if dbg, err := readDebugfs(dir); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			r.add("running kernel", Warn, "KHO debugfs: %v", err)
		}
	} else if len(dbg) > 0 {
		for prefix, c := range dbg {
			if was := r.Running.Compat[prefix]; was != "" && was != c {
				r.add("running kernel", Warn, "%s says %s, but the running kernel's outgoing KHO tree (%s) has %s: taking %s",
					sources[0], was, dir, c, c)
			}
			r.Running.Compat[prefix] = c
		}
		sources = append(sources, "KHO debugfs "+dir)
	}
	if len(sources) == 0 {
		r.add("running kernel", Warn, "the compatible strings %s writes are unknown (no --running-kernel image, no record from a previous live update, no %s, no %s): the next kernel is checked alone",
			o.release, boot, dir)
		return
	}
	r.Running.Source = strings.Join(sources, " and ")
	var known []string
	for _, a := range ABIs {
		if c := r.Running.Compat[a.Prefix]; c != "" {
			known = append(known, c)
		}
	}
	r.add("running kernel", OK, "writes %s (from %s)", strings.Join(known, " "), r.Running.Source)
}

// Limits on what is read from debugfs.
const (
	maxDebugfsFiles = 64
	maxDebugfsFile  = 1 << 20
)

// readDebugfs scans the blobs of KHO's outgoing tree in dir for compatible
// strings; a name found in several versions is left out.
func readDebugfs(dir string) (map[string]string, error) {
	names := []string{filepath.Join(dir, "fdt")}
	subs, err := os.ReadDir(filepath.Join(dir, "sub_fdts"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, e := range subs {
		if e.Type().IsRegular() && len(names) < maxDebugfsFiles {
			names = append(names, filepath.Join(dir, "sub_fdts", e.Name()))
		}
	}
	sc := newScanner()
	for _, n := range names {
		f, err := os.Open(n)
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(sc, io.LimitReader(f, maxDebugfsFile))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		sc.Write([]byte{0}) // a blob's last run ends with it
	}
	out := map[string]string{}
	for prefix, v := range sc.found {
		if len(v) == 1 {
			out[prefix] = v[0]
		}
	}
	return out, nil
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

// checkCmdline: the next command line turns LUO and KHO on.
func (r *Report) checkCmdline(o Options) {
	lu, luSet := lastParam(o.Cmdline, "liveupdate")
	kho, khoSet := lastParam(o.Cmdline, "kho")
	var bad []string
	if on, ok := kernelBool(lu); !luSet || !ok || !on {
		bad = append(bad, "liveupdate=on is missing (the next kernel would not start LUO)")
	}
	khoDefault := r.Next != nil && r.Next.Config != nil && r.Next.Config["CONFIG_KEXEC_HANDOVER_ENABLE_DEFAULT"] == "y"
	if on, ok := kernelBool(kho); khoSet && (!ok || !on) {
		bad = append(bad, fmt.Sprintf("kho=%s turns KHO off", kho))
	} else if !khoSet && !khoDefault {
		bad = append(bad, "kho=on is missing and the image does not say KHO is on by default")
	}
	if len(bad) > 0 {
		r.add("command line", Fail, "%q: %s", o.Cmdline, strings.Join(bad, "; "))
		return
	}
	var replaced []string
	for _, f := range strings.Fields(o.Given) {
		if k, v, _ := strings.Cut(f, "="); (k == "liveupdate" || k == "kho") && v != "on" {
			replaced = append(replaced, f)
		}
	}
	text := fmt.Sprintf("%q turns LUO and KHO on", o.Cmdline)
	if len(replaced) > 0 {
		text += fmt.Sprintf(" (luoinit replaced %s)", strings.Join(replaced, " "))
	}
	r.add("command line", OK, "%s", text)
}

// lastParam returns the value of the last name=value on the command line
// (the kernel applies each in turn, so the last wins).
func lastParam(cmdline, name string) (string, bool) {
	var v string
	var found bool
	for _, f := range strings.Fields(cmdline) {
		if f == "--" {
			break // the rest is init's
		}
		if k, val, has := strings.Cut(f, "="); k == name {
			v, found = val, true
			if !has {
				v = ""
			}
		}
	}
	return v, found
}

// kernelBool parses a value as the kernel's kstrtobool does.
func kernelBool(v string) (on, ok bool) {
	switch strings.ToLower(v) {
	case "1", "y", "yes", "on", "t", "true", "e", "enable", "enabled":
		return true, true
	case "0", "n", "no", "off", "f", "false", "d", "disable", "disabled":
		return false, true
	}
	return false, false
}

// checkMemory: the running kernel can hold the next kernel and initramfs
// for kexec_file_load, they fit in KHO's scratch area (with KHO on,
// kexec_file_load places every segment there: kernel/kexec_file.c), and
// the next kernel has room to start beside the preserved memory (memfds
// are shared memory, so Shmem bounds it).
func (r *Report) checkMemory(o Options) {
	if r.Next == nil {
		return
	}
	mi, err := readMeminfo(o.path("/proc/meminfo"))
	if err != nil {
		r.add("memory", Warn, "%v: not checked", err)
		return
	}
	load := r.Next.Size + o.InitramfsSize
	// The kernel decompresses itself into init_size bytes, and the
	// initramfs is held once packed and once unpacked.
	boot := int64(r.Next.Header.InitSize) + 2*o.InitramfsSize
	free := mi["MemTotal"] - mi["Shmem"]
	// The segments in scratch: the kernel's (init_size at least) and the
	// initramfs.
	segments := max(int64(r.Next.Header.InitSize), r.Next.Size) + o.InitramfsSize
	initrd := fmt.Sprintf("initramfs %d KiB", o.InitramfsSize>>10)
	if o.InitramfsSize == 0 {
		initrd = "initramfs size unknown, not counted"
	}
	st := OK
	var why string
	scratch, scratchErr := readScratch(o.path(KHODebugfs + "/scratch_len"))
	switch {
	case load > mi["MemAvailable"]:
		st, why = Fail, ": not enough available to load it"
	case scratchErr == nil && segments > scratch:
		st, why = Fail, ": the kernel and initramfs do not fit in KHO's scratch area (more with kho_scratch= at the running kernel's boot)"
	case boot > free:
		st, why = Fail, ": the next kernel could not start beside the preserved memory"
	}
	inScratch := "KHO scratch unknown (no debugfs)"
	if scratchErr == nil {
		inScratch = fmt.Sprintf("%d MiB in the %d MiB of KHO scratch", mib(segments), mib(scratch))
	}
	r.add("memory", st, "loading needs %d MiB of %d MiB available, %s; starting needs %d MiB of the %d MiB outside shared memory (%s)%s",
		mib(load), mib(mi["MemAvailable"]), inScratch, mib(boot), mib(free), initrd, why)
}

// readScratch sums KHO's scratch areas as debugfs lists them: one
// hexadecimal size per line.
func readScratch(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, f := range strings.Fields(string(b)) {
		n, err := strconv.ParseInt(f, 0, 64)
		if err != nil || n < 0 || sum+n < sum {
			return 0, fmt.Errorf("%s: %q is not a size", path, f)
		}
		sum += n
	}
	if sum == 0 {
		return 0, fmt.Errorf("%s: no scratch area", path)
	}
	return sum, nil
}

func mib(n int64) int64 { return (n + 1<<20 - 1) >> 20 }

func orUnknown(s string) string {
	if s == "" {
		return "(release unknown)"
	}
	return s
}

// readMeminfo reads the fields of /proc/meminfo, in bytes.
func readMeminfo(path string) (map[string]int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var n int64
		var unit string
		if c, _ := fmt.Sscan(rest, &n, &unit); c >= 1 {
			if unit == "kB" {
				n <<= 10
			}
			m[k] = n
		}
	}
	for _, k := range []string{"MemTotal", "MemAvailable", "Shmem"} {
		if _, ok := m[k]; !ok {
			return nil, fmt.Errorf("%s has no %s", path, k)
		}
	}
	return m, nil
}
