// Package rootfs mounts the root filesystem the kernel command line names
// (root=, rootfstype=, rootflags=, ro/rw, rootwait, rootdelay=) and
// switches PID 1 into it, as switch_root does, without exec'ing another
// init: luoinit stays PID 1 and its children come from the root.
//
//	root, err := rootfs.Switch(ctx, rootfs.Options{Cmdline: cmdline, Require: []string{"/etc/luoinit/config.toml"}, Log: log.Printf})
//	// root == nil, err == nil: no root=, the system stays in the initramfs
//
// Devices are found with u-root's pkg/mount/block (filesystem UUID,
// PARTUUID, PARTLABEL) and by the superblock's label and UUID where u-root
// reads none (LABEL=; erofs and btrfs UUIDs).
package rootfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/u-root/uio/ulog"
	"golang.org/x/sys/unix"
)

// DefaultTarget is where the root is mounted before PID 1 switches into it.
const DefaultTarget = "/sysroot"

// Options says what Switch does.
type Options struct {
	Cmdline string // the kernel command line
	Target  string // where the root is mounted first; default DefaultTarget
	// Require names files the root must hold (absolute, as seen from the
	// root): without them the root is unmounted and Switch fails before
	// the switch, with the initramfs as it was.
	Require []string
	Log     ulog.Logger
}

// Root is the root filesystem PID 1 switched into.
type Root struct {
	Spec   Spec
	Device string // the device node mounted, /dev/vda1
	FSType string
	Found  time.Duration // how long the device took to appear
	Took   time.Duration // from the start of the wait to the end of the switch
	Freed  int           // entries of the initramfs removed
}

// Switch mounts the root named on the command line and makes it PID 1's
// root. Without root= it does nothing and returns nil, nil. Each failure
// says what it was about: the device (a *NotFoundError when it did not
// appear), the filesystem types tried with their errno, the file the root
// lacks, or the mount that did not move.
func Switch(ctx context.Context, o Options) (*Root, error) {
	return realSystem.switchRoot(ctx, o)
}

func (s system) switchRoot(ctx context.Context, o Options) (*Root, error) {
	spec, ok, err := Parse(o.Cmdline)
	if !ok {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if o.Target == "" {
		o.Target = DefaultTarget
	}
	log := o.Log
	if log == nil {
		log = ulog.Null
	}
	start := time.Now()
	dev, err := s.wait(ctx, spec, log)
	if err != nil {
		return nil, err
	}
	r := &Root{Spec: spec, Device: dev, Found: time.Since(start)}
	log.Printf("root: %s=%s is %s (found after %v)", ParamRoot, spec.Root, dev, r.Found.Round(time.Millisecond))
	if r.FSType, err = mountRoot(dev, o.Target, spec); err != nil {
		return nil, fmt.Errorf("mounting the root %s (%s): %w", dev, spec, err)
	}
	if err := require(o.Target, o.Require); err != nil {
		if uerr := unix.Unmount(o.Target, 0); uerr != nil {
			log.Printf("root: umount(%q): %v", o.Target, uerr)
		}
		return nil, fmt.Errorf("the root %s (%s, %s) is not one luoinit can boot: %w", dev, r.FSType, spec, err)
	}
	if r.Freed, err = switchInto(o.Target, log); err != nil {
		return nil, fmt.Errorf("switching into the root %s (%s): %w", dev, r.FSType, err)
	}
	r.Took = time.Since(start)
	return r, nil
}

// require checks that root holds each of the files.
func require(root string, files []string) error {
	var errs []error
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			errs = append(errs, fmt.Errorf("no %s: %w", f, err))
		}
	}
	return errors.Join(errs...)
}
