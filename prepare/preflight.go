package prepare

import (
	"errors"
	"fmt"
	"os"

	"github.com/luoinit/luoinit/carry"
	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/preflight"
	"github.com/luoinit/luoinit/wellknown"
)

// preflight checks that the next kernel can take over the state, before
// anything is preserved or stopped; each finding is logged on one line.
func (s *state) preflight() error {
	rep := preflight.Run(PreflightOptions(s.o))
	for _, f := range rep.Findings {
		s.log.Printf("preflight: %s", f)
	}
	s.next = rep.Next
	return rep.Err()
}

// PreflightOptions are the preflight's options for what o asks (Kernel,
// Initrd, Append, ReuseCmdline, RunningKernel, PrevManifest, Device): the
// next command line as Cmdline composes it, and the record the previous
// live update left in its manifest.
func PreflightOptions(o Options) preflight.Options {
	prev, prevPath, _ := previous(o.PrevManifest)
	cur := readCmdline()
	po := preflight.Options{
		Kernel:        o.Kernel,
		Initrd:        o.Initrd,
		Cmdline:       Cmdline(cur, o.ReuseCmdline, o.Append, nextGeneration(prev, cur)),
		Given:         Given(cur, o.ReuseCmdline, o.Append),
		RunningKernel: o.RunningKernel,
		Device:        o.Device,
	}
	if prev != nil && prev.NextKernel.Release != "" {
		po.Recorded = &preflight.Recorded{
			Release:    prev.NextKernel.Release,
			Compatible: prev.NextKernel.Compatible,
			From:       fmt.Sprintf("manifest %s, generation %d", prevPath, prev.Generation),
		}
	}
	return po
}

// previous reads the running system's manifest (path, default
// wellknown.ManifestCopy): nil without error if there is none.
func previous(path string) (*manifest.Manifest, string, error) {
	if path == "" {
		path = wellknown.ManifestCopy
	}
	m, err := manifest.Load(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, path, nil
	}
	return m, path, err
}

// nextGeneration is the generation of the next live update: one more
// than the running system's, which is its manifest's or, where the
// manifest did not come back, the marker on its command line cmdline.
func nextGeneration(prev *manifest.Manifest, cmdline string) uint64 {
	var n uint64
	if prev != nil {
		n = prev.Generation
	}
	if g, ok, err := carry.Marker(cmdline); ok && err == nil {
		n = max(n, g)
	}
	return n + 1
}
