package prepare

import (
	"os"
	"testing"

	"github.com/luoinit/luoinit/manifest"
	"golang.org/x/sys/unix"
)

func TestKind(t *testing.T) {
	mfd, err := unix.MemfdCreate("k", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	memfd := os.NewFile(uintptr(mfd), "memfd")
	defer memfd.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	plain, err := os.CreateTemp(t.TempDir(), "f")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	ev := os.NewFile(uintptr(efd), "eventfd")
	defer ev.Close()
	for _, tc := range []struct {
		f    *os.File
		want string
	}{
		{memfd, "memfd"}, {r, "pipe"}, {plain, "file"}, {ev, "anon:eventfd"},
	} {
		if got := Kind(tc.f); got != tc.want {
			t.Errorf("Kind(%s) = %q, want %q", tc.f.Name(), got, tc.want)
		}
	}
}

// A memfd that came through a live update has no name: its link reads as
// a deleted file, and it is still what LUO preserves (an unlinked shmem
// file). An O_TMPFILE on tmpfs is the same thing to the kernel; a file
// still linked on tmpfs is not.
func TestKindUnnamedShmem(t *testing.T) {
	var fs unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &fs); err != nil || fs.Type != unix.TMPFS_MAGIC {
		t.Skip("/dev/shm is not a tmpfs here")
	}
	fd, err := unix.Open("/dev/shm", unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Skipf("O_TMPFILE on /dev/shm: %v", err)
	}
	unnamed := os.NewFile(uintptr(fd), "unnamed")
	defer unnamed.Close()
	if got := Kind(unnamed); got != manifest.KindMemfd {
		t.Errorf("Kind(an unlinked shmem file) = %q, want memfd", got)
	}
	linked, err := os.CreateTemp("/dev/shm", "luoinit-kind")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(linked.Name())
	defer linked.Close()
	if got := Kind(linked); got != manifest.KindFile {
		t.Errorf("Kind(a linked tmpfs file) = %q, want file", got)
	}
}

// Every kind prepare can write is one the manifest accepts.
func TestKindOfIsValid(t *testing.T) {
	for _, tc := range []struct{ target, want string }{
		{"/memfd:kv (deleted)", manifest.KindMemfd},
		{"pipe:[123]", manifest.KindPipe},
		{"socket:[9]", manifest.KindSocket},
		{"anon_inode:[eventfd]", "anon:eventfd"},
		{"anon_inode:inotify", "anon:inotify"},
		{"anon_inode:[luo_session]", "anon:luo_session"},
		{"anon_inode:[a name with spaces]", manifest.KindUnknown},
		{"anon_inode:", manifest.KindUnknown},
		{"/var/lib/x", manifest.KindFile},
		{"net:[4026531840]", manifest.KindUnknown},
	} {
		got := kindOf(tc.target)
		if got != tc.want {
			t.Errorf("kindOf(%q) = %q, want %q", tc.target, got, tc.want)
		}
		if !manifest.ValidKind(got) {
			t.Errorf("kindOf(%q) = %q, which a manifest refuses", tc.target, got)
		}
	}
}
