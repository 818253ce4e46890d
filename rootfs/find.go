package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/u-root/u-root/pkg/mount/block"
	"golang.org/x/sys/unix"
)

// system is where Find looks: /sys/class/block and /dev, and u-root's
// view of the block devices. Tests point it elsewhere.
type system struct {
	sysBlock string // /sys/class/block
	sysDev   string // /sys/dev/block
	dev      string // /dev
	// devices lists the block devices with their filesystem UUIDs
	// (u-root's block.GetBlockDevices).
	devices func() (block.BlockDevices, error)
}

var realSystem = system{
	sysBlock: "/sys/class/block",
	sysDev:   "/sys/dev/block",
	dev:      "/dev",
	devices:  block.GetBlockDevices,
}

// ErrAmbiguous is a root= that names more than one device.
var ErrAmbiguous = errors.New("more than one device matches")

// find returns the device node spec names, or "" while there is none.
func (s system) find(spec Spec) (string, error) {
	switch spec.By {
	case ByPath:
		return s.node(spec.Value)
	case ByDevNum:
		b, err := os.ReadFile(filepath.Join(s.sysDev, spec.Value, "uevent"))
		if err != nil {
			return "", nil // not (yet) there
		}
		for _, line := range strings.Split(string(b), "\n") {
			if name, ok := strings.CutPrefix(line, "DEVNAME="); ok {
				return s.node(filepath.Join(s.dev, name))
			}
		}
		return "", nil
	}
	devs, err := s.devices()
	if err != nil {
		return "", fmt.Errorf("listing block devices: %w", err)
	}
	var names []string
	switch spec.By {
	case ByUUID:
		names = blockNames(devs.FilterFSUUID(strings.ToLower(spec.Value)))
		if len(names) == 0 { // filesystems u-root does not read: erofs, btrfs
			names = s.probeNames(devs, func(id Identity) bool { return strings.EqualFold(id.UUID, spec.Value) })
		}
	case ByPartUUID:
		names = blockNames(devs.FilterPartID(spec.Value))
	case ByPartLabel:
		names = blockNames(devs.FilterPartLabel(spec.Value))
	case ByLabel:
		names = s.probeNames(devs, func(id Identity) bool { return id.FSType != "" && id.Label == spec.Value })
	default:
		return "", fmt.Errorf("%s=%s: no way to find it", ParamRoot, spec.Root)
	}
	switch {
	case len(names) == 0:
		return "", nil
	case len(names) > 1:
		return "", fmt.Errorf("%s=%s: %w: %s", ParamRoot, spec.Root, ErrAmbiguous, strings.Join(names, ", "))
	}
	name := names[0]
	if spec.PartNrOff != 0 {
		if name, err = s.partitionOffset(name, spec.PartNrOff); err != nil {
			return "", fmt.Errorf("%s=%s: %w", ParamRoot, spec.Root, err)
		}
	}
	return s.node(filepath.Join(s.dev, name))
}

// node returns path if it is a block device, "" if it does not exist yet.
func (s system) node(path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return "", nil
		}
		return "", fmt.Errorf("stat(%q): %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return "", fmt.Errorf("%s is not a block device", path)
	}
	return path, nil
}

// probeNames returns the devices whose superblock satisfies match.
func (s system) probeNames(devs block.BlockDevices, match func(Identity) bool) []string {
	var names []string
	for _, d := range devs {
		if id := s.identity(d.Name); match(id) {
			names = append(names, d.Name)
		}
	}
	return names
}

// identity probes the device named name; a zero Identity if it cannot.
func (s system) identity(name string) Identity {
	f, err := os.Open(filepath.Join(s.dev, name))
	if err != nil {
		return Identity{}
	}
	defer f.Close()
	id, _ := Probe(f)
	return id
}

// partitionOffset is PARTNROFF: the partition off after name (before, if
// negative) on the same disk.
func (s system) partitionOffset(name string, off int) (string, error) {
	b, err := os.ReadFile(filepath.Join(s.sysBlock, name, "partition"))
	if err != nil {
		return "", fmt.Errorf("PARTNROFF=%d: %s is not a partition: %w", off, name, err)
	}
	nr, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return "", fmt.Errorf("PARTNROFF=%d: %s: partition number %q", off, name, b)
	}
	// /sys/class/block/vda1 links to .../block/vda/vda1: the disk is the parent.
	link, err := filepath.EvalSymlinks(filepath.Join(s.sysBlock, name))
	if err != nil {
		return "", fmt.Errorf("PARTNROFF=%d: %w", off, err)
	}
	disk := filepath.Base(filepath.Dir(link))
	want := block.ComposePartName(disk, nr+off)
	if _, err := os.Stat(filepath.Join(s.sysBlock, want)); err != nil {
		return "", fmt.Errorf("PARTNROFF=%d: %s has no partition %d (%s)", off, disk, nr+off, want)
	}
	return want, nil
}

func blockNames(devs block.BlockDevices) []string {
	names := make([]string, 0, len(devs))
	for _, d := range devs {
		names = append(names, d.Name)
	}
	return names
}

// describe lists the block devices with what they say of themselves, for
// the progress line and the error of a root that does not come:
// "vda (ext4 UUID=... LABEL=...)".
func (s system) describe() string {
	devs, err := s.devices()
	if err != nil {
		return fmt.Sprintf("(listing block devices: %v)", err)
	}
	if len(devs) == 0 {
		return "none"
	}
	var parts []string
	for _, d := range devs {
		id := s.identity(d.Name)
		desc := d.Name
		if id.FSType != "" {
			desc += fmt.Sprintf(" (%s UUID=%s", id.FSType, id.UUID)
			if id.Label != "" {
				desc += fmt.Sprintf(" LABEL=%q", id.Label)
			}
			desc += ")"
		}
		parts = append(parts, desc)
	}
	return strings.Join(parts, ", ")
}

// Find returns the device node spec names now, "" if there is none (yet).
// It does not wait: the preflight asks whether the next kernel's root is
// here.
func Find(spec Spec) (string, error) { return realSystem.find(spec) }
