package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/luoinit/luoinit/pid1"
	"github.com/u-root/u-root/pkg/mount"
	"github.com/u-root/uio/ulog"
	"golang.org/x/sys/unix"
)

// moved are the mounts PID 1 made in the initramfs that go with it into
// the root (switch_root's list, and luoinit's /tmp). Their submounts
// (/dev/pts, /dev/shm) move with them.
var moved = []string{"/dev", "/proc", "/sys", "/run", "/tmp"}

// mountRoot mounts dev at target as spec says, trying each of
// spec.FSTypes in turn; without rootfstype=, the type the device's magic
// names (u-root's mount.FSFromBlock), else every block filesystem of
// /proc/filesystems, as the kernel does. It returns the type that
// mounted.
func mountRoot(dev, target string, spec Spec) (string, error) {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return "", err
	}
	types := spec.FSTypes
	if len(types) == 0 {
		if t, _, err := mount.FSFromBlock(dev); err == nil {
			types = []string{t}
		} else if types, err = mount.GetBlockFilesystems(); err != nil {
			return "", fmt.Errorf("no rootfstype= and no list of filesystems: %w", err)
		}
	}
	var flags uintptr
	if spec.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	var errs []error
	for _, t := range types {
		err := unix.Mount(dev, target, t, flags, spec.Flags)
		if err == nil {
			return t, nil
		}
		errs = append(errs, &pid1.MountError{Source: dev, Target: target, FSType: t, Flags: flags, Data: spec.Flags, Err: err})
	}
	if len(errs) == 0 {
		return "", fmt.Errorf("%s: no filesystem type to try", dev)
	}
	return "", errors.Join(errs...)
}

// switchInto makes newRoot the root of PID 1, as switch_root does, but
// stays in this process: it moves the mounts of moved into newRoot, moves
// newRoot onto /, chroots there and frees what the initramfs held. A
// failure before the root moved puts the moved mounts back and leaves
// the initramfs as it was. freed counts the initramfs's entries removed.
//
// u-root's mount.SwitchRoot does these steps and then execs an init; its
// steps without the exec are not exported, so the moves use its
// MoveMount and SameFilesystem, and the rest is here.
func switchInto(newRoot string, log ulog.Logger) (freed int, err error) {
	var done []string
	undo := func() {
		for i := len(done) - 1; i >= 0; i-- {
			if err := mount.MoveMount(filepath.Join(newRoot, done[i]), done[i]); err != nil {
				log.Printf("root: putting %s back: %v", done[i], err)
			}
		}
	}
	for _, m := range moved {
		if same, err := mount.SameFilesystem("/", m); err != nil || same {
			continue // not there, or not a mount of its own
		}
		dst := filepath.Join(newRoot, m)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			undo()
			return 0, fmt.Errorf("the root has no %s to move PID 1's %s to: %w", m, m, err)
		}
		if err := mount.MoveMount(m, dst); err != nil {
			undo()
			return 0, &pid1.MountError{Source: m, Target: dst, Flags: unix.MS_MOVE, Err: err}
		}
		done = append(done, m)
	}
	old, err := os.Open("/")
	if err != nil {
		undo()
		return 0, err
	}
	defer old.Close()
	if err := unix.Chdir(newRoot); err != nil {
		undo()
		return 0, fmt.Errorf("chdir(%q): %w", newRoot, err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		_ = unix.Chdir("/")
		undo()
		return 0, &pid1.MountError{Source: newRoot, Target: "/", Flags: unix.MS_MOVE, Err: err}
	}
	// From here the root has moved: there is no way back, and what
	// fails is logged.
	if err := unix.Chroot("."); err != nil {
		return 0, fmt.Errorf("chroot(%q): %w", newRoot, err)
	}
	if err := unix.Chdir("/"); err != nil {
		return 0, fmt.Errorf("chdir(\"/\") in the root: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(old.Fd()), &st); err != nil || (st.Type != unix.RAMFS_MAGIC && st.Type != unix.TMPFS_MAGIC) {
		log.Printf("root: the old root is not an initramfs (statfs type %#x, %v): its files are left as they are", st.Type, err)
		return 0, nil
	}
	fd, err := unix.Dup(int(old.Fd()))
	if err != nil {
		log.Printf("root: freeing the initramfs: dup: %v", err)
		return 0, nil
	}
	return removeAll(fd, log), nil
}

// removeAll removes what the directory dirfd holds, not crossing into
// other filesystems, and returns how many entries went; it closes dirfd.
// It goes on past what it cannot remove, which it logs: the point is the
// memory freed.
func removeAll(dirfd int, log ulog.Logger) int {
	d := os.NewFile(uintptr(dirfd), "initramfs")
	defer d.Close()
	var st unix.Stat_t
	if err := unix.Fstat(dirfd, &st); err != nil {
		log.Printf("root: freeing the initramfs: fstat: %v", err)
		return 0
	}
	names, err := d.Readdirnames(-1)
	if err != nil {
		log.Printf("root: freeing the initramfs: %v", err)
	}
	n := 0
	for _, name := range names {
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil { // a file or a link
			if err := unix.Unlinkat(dirfd, name, 0); err != nil {
				log.Printf("root: freeing the initramfs: unlinkat(%q): %v", name, err)
				continue
			}
			n++
			continue
		}
		var cst unix.Stat_t
		if unix.Fstat(fd, &cst) != nil || cst.Dev != st.Dev {
			unix.Close(fd) // another filesystem: not ours to empty
			continue
		}
		n += removeAll(fd, log) // closes fd
		if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil {
			log.Printf("root: freeing the initramfs: unlinkat(%q, AT_REMOVEDIR): %v", name, err)
			continue
		}
		n++
	}
	return n
}
