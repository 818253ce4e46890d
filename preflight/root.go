package preflight

import (
	"errors"

	"github.com/luoinit/luoinit/rootfs"
)

// checkRoot: the root filesystem of the next command line's root= is one
// the next kernel's luoinit can find. A root= it cannot parse, or one that
// names two devices, fails there for certain; one that names no device
// here now may yet appear (a disk that probes late), so it is a warning.
func (r *Report) checkRoot(o Options) {
	spec, ok, err := rootfs.Parse(o.Cmdline)
	if !ok {
		return // no root=: the next kernel stays in its initramfs
	}
	if err != nil {
		r.add("root", Fail, "%v: the next kernel's luoinit would stop before restoring anything", err)
		return
	}
	find := o.findRoot
	if find == nil {
		find = rootfs.Find
	}
	dev, err := find(spec)
	switch {
	case err != nil && errors.Is(err, rootfs.ErrAmbiguous):
		r.add("root", Fail, "%v: the next kernel's luoinit would not guess which", err)
	case err != nil:
		r.add("root", Warn, "%s: %v", spec, err)
	case dev == "":
		r.add("root", Warn, "%s names no block device here now: unless it appears at boot, the next kernel's luoinit stops after its wait (%v) with every session kept in the kernel", spec, spec.Wait)
	default:
		r.add("root", OK, "%s is %s here now", spec, dev)
	}
}
