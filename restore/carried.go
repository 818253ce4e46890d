package restore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/luoinit/luoinit/atomicfile"
	"github.com/luoinit/luoinit/carry"
	"github.com/luoinit/luoinit/luo"
	"github.com/luoinit/luoinit/manifest"
	"golang.org/x/sys/unix"
)

// source is where a boot's state comes from: nothing (a cold boot), or
// luoinit's own session (package carry), whose manifest names the rest.
type source struct {
	cold       bool   // no live update marker on the command line
	generation uint64 // the marker's
	err        error  // why a live update's state did not come back
	dev        Device // open /dev/liveupdate; Run closes it
	own        Session
	m          *manifest.Manifest
	data       []byte // the manifest as it was carried
}

// load tells a cold boot from a live update by the marker prepare put on
// the command line, and for a live update gets the manifest from
// luoinit's own session. With the marker, any step that fails leaves
// src.err set, saying which step and why.
func (b *boot) load() *source {
	gen, marked, err := carry.Marker(b.o.cmdline())
	if !marked {
		return &source{cold: true}
	}
	src := &source{generation: gen}
	if err != nil {
		src.err = err
		return src
	}
	dev, err := b.o.OpenDevice()
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			src.err = fmt.Errorf("no %s: the kernel was booted without liveupdate=on, or built without LUO (%w)", luo.DefaultPath, err)
		case errors.Is(err, unix.EIO):
			src.err = fmt.Errorf("%s gives EIO: the kernel could not deserialise the incoming sessions, so none can be retrieved (%w)", luo.DefaultPath, err)
		default:
			src.err = fmt.Errorf("cannot open %s: %w", luo.DefaultPath, err)
		}
		return src
	}
	b.tl.Mark(PhaseDevice)
	src.own, src.m, src.data, src.err = readCarried(dev)
	if src.err != nil {
		dev.Close()
		return src
	}
	src.dev = dev
	b.tl.Mark(PhaseManifest)
	if src.m.Generation != gen {
		b.log.Printf("the manifest says generation %d, the command line %s=%d: going by the manifest", src.m.Generation, carry.UpdateParam, gen)
	}
	return src
}

// readCarried retrieves luoinit's own session and reads the manifest
// from it: sealed, at most manifest.MaxFileSize bytes, valid. A panic
// while reading it is an error like any other: PID 1 goes on.
func readCarried(dev Device) (own Session, m *manifest.Manifest, data []byte, err error) {
	what := fmt.Sprintf("the manifest (session %q token %d)", carry.Session, carry.ManifestToken)
	defer func() {
		if r := recover(); r != nil {
			own, m, data, err = nil, nil, nil, fmt.Errorf("%s: panic while reading it: %v", what, r)
		}
	}()
	own, err = dev.RetrieveSession(carry.Session)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("luoinit's own session %q did not come back: %w", carry.Session, err)
	}
	f, err := own.RetrieveFD(carry.ManifestToken)
	if err != nil {
		own.Close()
		return nil, nil, nil, fmt.Errorf("%s did not come back: %w", what, err)
	}
	defer f.Close()
	data, err = carry.ReadSealed(f, manifest.MaxFileSize)
	if err != nil {
		own.Close()
		return nil, nil, nil, fmt.Errorf("%s is unusable: %w", what, err)
	}
	m, err = manifest.Parse(data)
	if err != nil {
		own.Close()
		return nil, nil, nil, fmt.Errorf("%s is unusable: %w", what, err)
	}
	return own, m, data, nil
}

// cmdline is the kernel command line: Cmdline, else /proc/cmdline.
func (o BootOptions) cmdline() string {
	if o.Cmdline != "" {
		return o.Cmdline
	}
	b, _ := os.ReadFile("/proc/cmdline")
	return strings.TrimSpace(string(b))
}

// copyManifest writes the manifest as it was carried to ManifestCopy,
// for `luoinit manifest show`, `luoinit status` and the next prepare.
func (b *boot) copyManifest(data []byte) {
	p := b.o.ManifestCopy
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		b.log.Printf("manifest copy: %v", err)
		return
	}
	if err := atomicfile.WriteBytes(p, 0o644, data); err != nil {
		b.log.Printf("manifest copy: %v", err)
	}
}
