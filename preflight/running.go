package preflight

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// KHODebugfs is where KHO's debugfs shows the tree the running kernel
// will hand over (CONFIG_KEXEC_HANDOVER_DEBUGFS, debugfs mounted): "fdt",
// whose root is compatible with the KHO version, and one blob per subtree
// under sub_fdts; LUO's begins with its ABI string.
const KHODebugfs = "/sys/kernel/debug/kho/out"

// readRunning finds the running kernel's compatible strings. A whole set
// comes from the first of: an image named by the caller (RunningKernel),
// what luoinit recorded when it loaded this kernel (the previous live
// update's manifest, if its release is this kernel's), the image at
// /boot/vmlinuz-<release>. Over that set, KHO's debugfs wins where it
// speaks (KHODebugfs, if debugfs is mounted): it is the running kernel's
// own outgoing state and shows the KHO and LUO versions (not memfd's).
// Neither /proc nor sysfs shows any of them.
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
