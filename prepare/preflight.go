package prepare

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/preflight"
)

// preflight checks that the next kernel can take over the state, before
// anything is preserved or stopped; each finding is logged on one line.
func (s *state) preflight() error {
	o := s.o
	rep := preflight.Run(PreflightOptions(o, s.initramfsEstimate()))
	for _, f := range rep.Findings {
		s.logf("preflight: %s", f)
	}
	s.next = rep.Next
	return rep.Err()
}

// PreflightOptions are the preflight's options for what o asks (Kernel,
// Append, ReuseCmdline, RunningKernel, PrevManifest, Device): the next
// command line as Cmdline composes it, and the record the previous live
// update left in its manifest. initramfs is the next initramfs's size or
// an estimate.
func PreflightOptions(o Options, initramfs int64) preflight.Options {
	prevManifest := o.PrevManifest
	if prevManifest == "" {
		prevManifest = "/" + manifest.Path
	}
	cur := readCmdline()
	po := preflight.Options{
		Kernel:        o.Kernel,
		Cmdline:       Cmdline(cur, o.ReuseCmdline, o.Append),
		Given:         Given(cur, o.ReuseCmdline, o.Append),
		RunningKernel: o.RunningKernel,
		InitramfsSize: initramfs,
		Device:        o.Device,
	}
	if prev, err := manifest.Load(prevManifest); err == nil && prev.NextKernel.Release != "" {
		po.Recorded = &preflight.Recorded{
			Release:    prev.NextKernel.Release,
			Compatible: prev.NextKernel.Compatible,
			From:       fmt.Sprintf("manifest %s, generation %d", prevManifest, prev.Generation),
		}
	}
	return po
}

// initramfsEstimate is the next initramfs's size before it is built: the
// base image's or the running root's, plus luoinit and the config; 0 if
// unknown. The manifest adds a few KiB more.
func (s *state) initramfsEstimate() int64 {
	o := s.o
	size := func(p string) int64 {
		if st, err := os.Stat(p); err == nil {
			return st.Size()
		}
		return 0
	}
	switch {
	case o.Initrd != "":
		return size(o.Initrd)
	case o.InitrdFromRoot:
		return treeSize("/", "proc", "sys", "dev", "run", "tmp")
	}
	self := o.Self
	if self == "" {
		self, _ = os.Executable()
	}
	return size(self) + size(o.ConfigPath)
}

// treeSize sums the sizes of the regular files under root, not descending
// into the top-level directories skip; what it cannot read counts 0.
func treeSize(root string, skip ...string) int64 {
	var n int64
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && filepath.Dir(p) == root && slices.Contains(skip, d.Name()) {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
