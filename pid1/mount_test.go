package pid1

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeMounter is a system where mounting /proc makes mountinfo readable.
type fakeMounter struct {
	procUp   bool
	table    []mountinfoEntry
	infoErr  error
	mountErr map[string]error
	mkdirErr map[string]error
	mounted  []string // targets, in order
}

func (f *fakeMounter) mkdirAll(path string) error { return f.mkdirErr[path] }

func (f *fakeMounter) mount(source, target, fstype string, flags uintptr, data string) error {
	if err := f.mountErr[target]; err != nil {
		return err
	}
	f.mounted = append(f.mounted, target)
	f.table = append(f.table, mountinfoEntry{MountPoint: target, FSType: fstype, Source: source})
	if target == "/proc" {
		f.procUp = true
	}
	return nil
}

func (f *fakeMounter) mountinfo() ([]mountinfoEntry, error) {
	if f.infoErr != nil {
		return nil, f.infoErr
	}
	if !f.procUp {
		return nil, &fs.PathError{Op: "open", Path: "/proc/self/mountinfo", Err: unix.ENOENT}
	}
	return f.table, nil
}

func (f *fakeMounter) symlink(target, name string) error { return nil }

func TestMountAll(t *testing.T) {
	all := []string{"/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/run", "/tmp"}
	tests := []struct {
		name      string
		m         *fakeMounter
		mounted   []string
		errs      []string // each in the error
		is        []error  // each errors.Is the error
		logs      []string // each logged once
		keptLines int      // lines saying what was already mounted
	}{
		{
			name:    "nothing mounted yet",
			m:       &fakeMounter{},
			mounted: all,
		},
		{
			name: "proc and dev mounted already",
			m: &fakeMounter{procUp: true, table: []mountinfoEntry{
				{MountPoint: "/", FSType: "rootfs"},
				{MountPoint: "/proc", FSType: "proc"},
				{MountPoint: "/dev", FSType: "devtmpfs"},
			}},
			mounted:   []string{"/sys", "/dev/pts", "/dev/shm", "/run", "/tmp"},
			logs:      []string{"already mounted, kept as they are: /proc (proc), /dev (devtmpfs)"},
			keptLines: 1,
		},
		{
			name:      "EBUSY is already mounted",
			m:         &fakeMounter{mountErr: map[string]error{"/dev/shm": unix.EBUSY, "/tmp": unix.EBUSY}},
			mounted:   []string{"/proc", "/sys", "/dev", "/dev/pts", "/run"},
			logs:      []string{"already mounted, kept as they are: /dev/shm (busy), /tmp (busy)"},
			keptLines: 1,
		},
		{
			name:    "no devtmpfs",
			m:       &fakeMounter{mountErr: map[string]error{"/dev": unix.ENODEV}},
			mounted: []string{"/proc", "/sys", "/dev/pts", "/dev/shm", "/run", "/tmp"},
			errs:    []string{`mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") = ENODEV (no such device)`},
			is:      []error{unix.ENODEV},
		},
		{
			name: "two failures, both reported",
			m:    &fakeMounter{mountErr: map[string]error{"/sys": unix.EPERM, "/dev/pts": unix.EINVAL}},
			errs: []string{
				`mount("sysfs", "/sys", "sysfs", MS_NOSUID|MS_NODEV|MS_NOEXEC, "") = EPERM`,
				`mount("devpts", "/dev/pts", "devpts", MS_NOSUID|MS_NOEXEC, "newinstance,ptmxmode=0666") = EINVAL`,
			},
			is:      []error{unix.EPERM, unix.EINVAL},
			mounted: []string{"/proc", "/dev", "/dev/shm", "/run", "/tmp"},
		},
		{
			name: "mount point cannot be made",
			m: &fakeMounter{mkdirErr: map[string]error{
				"/run": &SyscallError{Call: `mkdir("/run", 0755)`, Err: unix.EROFS},
			}},
			mounted: []string{"/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/tmp"},
			errs:    []string{`mkdir("/run", 0755) = EROFS (read-only file system)`},
			is:      []error{unix.EROFS},
		},
		{
			name:    "no mountinfo: EBUSY alone tells",
			m:       &fakeMounter{infoErr: unix.EACCES, mountErr: map[string]error{"/proc": unix.EBUSY}},
			mounted: all[1:],
			logs: []string{
				"already mounted, kept as they are: /proc (busy)",
				"cannot read the mount table (permission denied): already-mounted filesystems were found by EBUSY only",
			},
			keptLines: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := &recLogger{}
			err := mountAll(log, tc.m, "/")
			if strings.Join(tc.m.mounted, " ") != strings.Join(tc.mounted, " ") {
				t.Errorf("mounted %q, want %q", tc.m.mounted, tc.mounted)
			}
			if len(tc.errs) == 0 && err != nil {
				t.Errorf("error %v, want none", err)
			}
			for _, want := range tc.errs {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("error %v, want it to contain %q", err, want)
				}
			}
			for _, want := range tc.is {
				if !errors.Is(err, want) {
					t.Errorf("error %v is not %v", err, want)
				}
			}
			for _, want := range tc.logs {
				if log.count(want) != 1 {
					t.Errorf("log lacks %q once:\n%s", want, log.text())
				}
			}
			if n := log.count("already mounted"); n != tc.keptLines {
				t.Errorf("%d lines about what was mounted already, want %d:\n%s", n, tc.keptLines, log.text())
			}
		})
	}
}

func TestMountFlagsString(t *testing.T) {
	tests := []struct {
		flags uintptr
		want  string
	}{
		{0, "0"},
		{unix.MS_NOSUID, "MS_NOSUID"},
		{unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "MS_NOSUID|MS_NODEV|MS_NOEXEC"},
		{unix.MS_RDONLY | 1<<30, "MS_RDONLY|0x40000000"},
	}
	for _, tc := range tests {
		if got := mountFlagsString(tc.flags); got != tc.want {
			t.Errorf("mountFlagsString(%#x) = %q, want %q", tc.flags, got, tc.want)
		}
	}
}

// TestMountAllReal mounts for real, under a temporary root, in a mount
// namespace of a child's own; a second MountAll must find everything
// mounted and say so in one line. The devtmpfs is the kernel's one
// instance: the mount points and /dev links MountAll makes in it are those
// every /dev has.
func TestMountAllReal(t *testing.T) {
	root := t.TempDir()
	out, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	p, stderr := startHelper(t, "mountall", false, out, rootEnv+"="+root)
	if ws := waitProc(t, p, 20*time.Second); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("helper %s:\n%s", describeStatus(ws), readAll(t, stderr))
	}
	got := readAll(t, out)
	for _, want := range []string{
		"call 1: <nil>\n", "call 2: <nil>\n",
		"/proc proc\n", "/sys sysfs\n", "/dev devtmpfs\n", "/dev/pts devpts\n",
		"/dev/shm tmpfs\n", "/run tmpfs\n", "/tmp tmpfs\n",
		"/dev/fd -> /proc/self/fd\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("helper output lacks %q:\n%s", want, got)
		}
	}
	log := readAll(t, stderr)
	kept := fmt.Sprintf("already mounted, kept as they are: %[1]s/proc (proc), %[1]s/sys (sysfs), %[1]s/dev (devtmpfs), "+
		"%[1]s/dev/pts (devpts), %[1]s/dev/shm (tmpfs), %[1]s/run (tmpfs), %[1]s/tmp (tmpfs)", root)
	if strings.Count(log, "already mounted") != 1 || !strings.Contains(log, kept) {
		t.Errorf("log, want one line %q:\n%s", kept, log)
	}
}

func helperMountAll() int {
	if link, err := os.Readlink("/proc/self/ns/mnt"); err != nil || link == os.Getenv(parentNSEnv) {
		fmt.Fprintf(os.Stderr, "helper: not in a mount namespace of its own (%s, %v)\n", link, err)
		return 99
	}
	root := os.Getenv(rootEnv)
	log := NewLogger(false)
	m := sysMounter{root: root}
	for i := 1; i <= 2; i++ {
		fmt.Printf("call %d: %v\n", i, mountAll(log, m, root))
	}
	entries, err := m.mountinfo()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, e := range entries {
		if rel, ok := strings.CutPrefix(e.MountPoint, root); ok && rel != "" {
			fmt.Printf("%s %s\n", rel, e.FSType)
		}
	}
	if target, err := os.Readlink(root + "/dev/fd"); err == nil {
		fmt.Printf("/dev/fd -> %s\n", target)
	}
	return 0
}
