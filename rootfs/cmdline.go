package rootfs

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/luoinit/luoinit/kcmdline"
)

// The kernel parameters of the root, as the kernel documents them
// (Documentation/admin-guide/kernel-parameters.txt).
const (
	ParamRoot      = "root"       // the device: /dev/NAME, MAJOR:MINOR, UUID=, PARTUUID=[/PARTNROFF=], PARTLABEL=, LABEL=
	ParamFSType    = "rootfstype" // filesystem types to try, comma-separated; default: detect
	ParamFlags     = "rootflags"  // the filesystem's mount options (mount(2)'s data)
	ParamWait      = "rootwait"   // wait for the device; rootwait=SECONDS bounds the wait
	ParamDelay     = "rootdelay"  // seconds to sleep before looking for the device
	ParamReadOnly  = "ro"         // mount the root read-only (the default)
	ParamReadWrite = "rw"         // mount the root read-write
)

// Bounds of the wait for the root device. The kernel waits for ever with a
// bare rootwait; luoinit does not, so that a mistyped UUID ends in an
// error that names it rather than a machine that hangs in silence.
const (
	// DefaultWait bounds a bare rootwait.
	DefaultWait = 5 * time.Minute
	// NoWait bounds the wait without rootwait: time for drivers that
	// probe their disks after init started.
	NoWait = 10 * time.Second
)

// How the root= value names the device.
const (
	ByPath      = "path"      // /dev/NAME
	ByDevNum    = "devnum"    // MAJOR:MINOR
	ByUUID      = "UUID"      // the filesystem's UUID
	ByPartUUID  = "PARTUUID"  // the GPT partition's unique GUID
	ByPartLabel = "PARTLABEL" // the GPT partition's name
	ByLabel     = "LABEL"     // the filesystem's label
)

// Spec is the root the kernel command line asks for.
type Spec struct {
	Root  string // root= as written
	By    string // ByPath, ByUUID, ...
	Value string // the path, the number or the identifier, without its KEY=
	// PartNrOff is PARTUUID=.../PARTNROFF=N: the partition N after (or
	// before) the one with that GUID, on the same disk.
	PartNrOff int
	FSTypes   []string // rootfstype=, in order; empty: detect
	Flags     string   // rootflags=
	ReadOnly  bool     // ro (the default) or rw, the last one given
	Delay     time.Duration
	// Wait is how long to look for the device: NoWait, DefaultWait, or
	// rootwait=SECONDS.
	Wait time.Duration
}

// Parse reads the root from a kernel command line. ok is false without
// root=: the system stays in the initramfs.
func Parse(cmdline string) (spec Spec, ok bool, err error) {
	params, _, _ := kcmdline.Split(cmdline)
	spec = Spec{ReadOnly: true, Wait: NoWait}
	for _, p := range params {
		switch p.Name {
		case ParamRoot:
			spec.Root, ok = p.Value, true
		case ParamFSType:
			spec.FSTypes = nil
			for _, t := range strings.Split(p.Value, ",") {
				if t != "" {
					spec.FSTypes = append(spec.FSTypes, t)
				}
			}
		case ParamFlags:
			spec.Flags = p.Value
		case ParamReadOnly, ParamReadWrite:
			if !p.HasValue {
				spec.ReadOnly = p.Name == ParamReadOnly
			}
		case ParamWait:
			spec.Wait = DefaultWait
			if p.HasValue {
				if spec.Wait, err = seconds(p); err != nil {
					return spec, ok, err
				}
			}
		case ParamDelay:
			if spec.Delay, err = seconds(p); err != nil {
				return spec, ok, err
			}
		}
	}
	if !ok {
		return spec, false, nil
	}
	if err := spec.parseRoot(); err != nil {
		return spec, true, err
	}
	return spec, true, nil
}

// seconds reads NAME=SECONDS, a whole number as the kernel takes it.
func seconds(p kcmdline.Param) (time.Duration, error) {
	n, err := strconv.ParseUint(p.Value, 10, 31)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: want a whole number of seconds", p.Name, p.Value)
	}
	return time.Duration(n) * time.Second, nil
}

// parseRoot splits root= into By and Value.
func (s *Spec) parseRoot() error {
	v := s.Root
	for _, by := range []string{ByUUID, ByPartUUID, ByPartLabel, ByLabel} {
		if rest, found := strings.CutPrefix(v, by+"="); found {
			s.By, s.Value = by, rest
			break
		}
	}
	switch {
	case s.By == ByPartUUID:
		if id, off, found := strings.Cut(s.Value, "/PARTNROFF="); found {
			n, err := strconv.Atoi(off)
			if err != nil {
				return fmt.Errorf("%s=%s: PARTNROFF=%q is not a number", ParamRoot, s.Root, off)
			}
			s.Value, s.PartNrOff = id, n
		}
	case s.By != "":
	case strings.HasPrefix(v, "/dev/"):
		s.By, s.Value = ByPath, v
	case isDevNum(v):
		s.By, s.Value = ByDevNum, v
	default:
		return fmt.Errorf("%s=%s: luoinit finds a root by /dev/NAME, MAJOR:MINOR, UUID=, PARTUUID=, PARTLABEL= or LABEL=", ParamRoot, v)
	}
	if s.Value == "" {
		return fmt.Errorf("%s=%s: nothing after %s=", ParamRoot, s.Root, s.By)
	}
	return nil
}

// isDevNum says whether v is MAJOR:MINOR in decimal.
func isDevNum(v string) bool {
	maj, min, found := strings.Cut(v, ":")
	_, err1 := strconv.ParseUint(maj, 10, 32)
	_, err2 := strconv.ParseUint(min, 10, 32)
	return found && err1 == nil && err2 == nil
}

// String is the spec as an operator wrote it, with how it is mounted.
func (s Spec) String() string {
	mode := "ro"
	if !s.ReadOnly {
		mode = "rw"
	}
	out := ParamRoot + "=" + s.Root + " " + mode
	if len(s.FSTypes) > 0 {
		out += " " + ParamFSType + "=" + strings.Join(s.FSTypes, ",")
	}
	if s.Flags != "" {
		out += " " + ParamFlags + "=" + s.Flags
	}
	return out
}
