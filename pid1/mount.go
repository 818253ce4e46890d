package pid1

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/u-root/uio/ulog"
	"golang.org/x/sys/unix"
)

// mountSpec is one mount(2) call.
type mountSpec struct {
	Source, Target, FSType string
	Flags                  uintptr
	Data                   string
}

// earlyMounts are the filesystems a PID 1 needs, in order: /proc first,
// since whatever is already mounted is read from /proc/self/mountinfo;
// /dev before the mounts under it, which must land on the devtmpfs and not
// on the initramfs directory it covers.
var earlyMounts = []mountSpec{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	// A devpts of our own (newinstance): /dev/ptmx of the devtmpfs opens
	// the devpts mounted at pts/ beside it.
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "newinstance,ptmxmode=0666"},
	{"tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
	{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
}

// devLinks are the links every /dev has and a devtmpfs lacks (shells use
// /dev/fd for process substitution).
var devLinks = []struct{ Name, Target string }{
	{"/dev/fd", "/proc/self/fd"},
	{"/dev/stdin", "/proc/self/fd/0"},
	{"/dev/stdout", "/proc/self/fd/1"},
	{"/dev/stderr", "/proc/self/fd/2"},
}

// MountError is a failed mount(2), written the way strace shows it:
// `mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") = ENODEV (no such device)`.
// It wraps the errno.
type MountError struct {
	Source, Target, FSType string
	Flags                  uintptr
	Data                   string
	Err                    error
}

func (e *MountError) Error() string {
	return fmt.Sprintf("mount(%q, %q, %q, %s, %q) = %s",
		e.Source, e.Target, e.FSType, mountFlagsString(e.Flags), e.Data, errnoText(e.Err))
}

func (e *MountError) Unwrap() error { return e.Err }

// MountAll mounts /proc, /sys, /dev (devtmpfs), /dev/pts (devpts,
// newinstance), /dev/shm, /run and /tmp (tmpfs), creating the mount points,
// and adds /dev/fd and /dev/std{in,out,err}. A filesystem already mounted on
// one of them (listed in /proc/self/mountinfo, or refused with EBUSY) is
// kept and named in a single log line. It mounts all it can and returns the
// failures joined, each a *MountError or a *SyscallError; the caller
// decides which are fatal.
//
// Mountinfo is read before mounting rather than relying on EBUSY because
// mounting over a mount point is not an error: a second proc or devtmpfs
// would be stacked on the first, hiding what is open below it.
func MountAll(log ulog.Logger) error {
	return mountAll(orDiscard(log), sysMounter{root: "/"}, "/")
}

// mounter is what mountAll does to the system, for the tests.
type mounter interface {
	mkdirAll(path string) error
	mount(source, target, fstype string, flags uintptr, data string) error
	mountinfo() ([]mountinfoEntry, error) // of the process, once /proc is up
	symlink(target, name string) error
}

// mountAll mounts earlyMounts under root ("/" but in tests).
func mountAll(log ulog.Logger, m mounter, root string) error {
	var (
		errs     []error
		kept     []string
		table    map[string]string // nil until mountinfo could be read
		tableErr error
	)
	load := func() {
		entries, err := m.mountinfo()
		if err != nil {
			tableErr = err
			return
		}
		table, tableErr = mountTable(entries), nil
	}
	load() // /proc may be up already
	for _, s := range earlyMounts {
		target := filepath.Join(root, s.Target)
		if fstype, ok := table[target]; ok {
			kept = append(kept, fmt.Sprintf("%s (%s)", target, fstype))
			continue
		}
		if err := m.mkdirAll(target); err != nil {
			errs = append(errs, err)
			continue
		}
		err := m.mount(s.Source, target, s.FSType, s.Flags, s.Data)
		switch {
		case errors.Is(err, unix.EBUSY):
			kept = append(kept, fmt.Sprintf("%s (busy)", target))
		case err != nil:
			errs = append(errs, &MountError{Source: s.Source, Target: target, FSType: s.FSType, Flags: s.Flags, Data: s.Data, Err: err})
		}
		if s.Target == "/proc" && table == nil {
			load()
		}
	}
	if len(kept) > 0 {
		log.Printf("already mounted, kept as they are: %s", strings.Join(kept, ", "))
	}
	if table == nil {
		log.Printf("cannot read the mount table (%v): already-mounted filesystems were found by EBUSY only", tableErr)
	}
	var linkErrs []string
	for _, l := range devLinks {
		name := filepath.Join(root, l.Name)
		if err := m.symlink(l.Target, name); err != nil && !errors.Is(err, fs.ErrExist) {
			linkErrs = append(linkErrs, err.Error())
		}
	}
	if len(linkErrs) > 0 {
		log.Printf("/dev links missing: %s", strings.Join(linkErrs, "; "))
	}
	return errors.Join(errs...)
}

// sysMounter is the system, with mountinfo read from root's /proc.
type sysMounter struct{ root string }

func (s sysMounter) mkdirAll(path string) error {
	err := os.MkdirAll(path, 0o755)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return syscallErr(pe.Err, "%s(%q, 0755)", pe.Op, pe.Path)
	}
	return err
}

func (sysMounter) mount(source, target, fstype string, flags uintptr, data string) error {
	return unix.Mount(source, target, fstype, flags, data)
}

func (s sysMounter) mountinfo() ([]mountinfoEntry, error) {
	f, err := os.Open(filepath.Join(s.root, "proc/self/mountinfo"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseMountinfo(f)
}

func (sysMounter) symlink(target, name string) error {
	err := unix.Symlink(target, name)
	if err == unix.EEXIST {
		return fs.ErrExist
	}
	return syscallErr(err, "symlink(%q, %q)", target, name)
}

var mountFlagNames = []struct {
	flag uintptr
	name string
}{
	{unix.MS_RDONLY, "MS_RDONLY"},
	{unix.MS_NOSUID, "MS_NOSUID"},
	{unix.MS_NODEV, "MS_NODEV"},
	{unix.MS_NOEXEC, "MS_NOEXEC"},
	{unix.MS_SYNCHRONOUS, "MS_SYNCHRONOUS"},
	{unix.MS_REMOUNT, "MS_REMOUNT"},
	{unix.MS_NOATIME, "MS_NOATIME"},
	{unix.MS_BIND, "MS_BIND"},
	{unix.MS_REC, "MS_REC"},
	{unix.MS_PRIVATE, "MS_PRIVATE"},
	{unix.MS_RELATIME, "MS_RELATIME"},
	{unix.MS_STRICTATIME, "MS_STRICTATIME"},
}

// mountFlagsString is "MS_NOSUID|MS_NODEV", or "0".
func mountFlagsString(flags uintptr) string {
	if flags == 0 {
		return "0"
	}
	var names []string
	for _, f := range mountFlagNames {
		if flags&f.flag != 0 {
			names = append(names, f.name)
			flags &^= f.flag
		}
	}
	if flags != 0 {
		names = append(names, fmt.Sprintf("%#x", flags))
	}
	return strings.Join(names, "|")
}
