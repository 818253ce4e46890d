package prepare

import (
	"fmt"
	"os"
	"strings"

	"github.com/luoinit/luoinit/manifest"
	"golang.org/x/sys/unix"
)

// Kind names the type of an open file for the manifest and for errors:
// one of manifest.Kinds, or manifest.AnonKind of an anon inode's name.
//
// manifest.KindMemfd is what LUO's memfd handler takes: a shmem file with
// no name in any directory. That is a memfd_create(2) file, whose link
// reads "/memfd:NAME (deleted)", but also a memfd that came through a live
// update, which has lost its name and reads as a plain deleted file.
func Kind(f *os.File) string {
	target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		return manifest.KindUnknown
	}
	k := kindOf(target)
	if k == manifest.KindFile && unlinkedShmem(f) {
		return manifest.KindMemfd
	}
	return k
}

// unlinkedShmem reports whether f is a tmpfs (shmem) file with no links,
// as the kernel's memfd_luo_can_preserve checks.
func unlinkedShmem(f *os.File) bool {
	var fs unix.Statfs_t
	var st unix.Stat_t
	return unix.Fstatfs(int(f.Fd()), &fs) == nil && fs.Type == unix.TMPFS_MAGIC &&
		unix.Fstat(int(f.Fd()), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink == 0
}

func kindOf(target string) string {
	switch {
	case strings.HasPrefix(target, "/memfd:"):
		return manifest.KindMemfd
	case strings.HasPrefix(target, "pipe:"):
		return manifest.KindPipe
	case strings.HasPrefix(target, "socket:"):
		return manifest.KindSocket
	case strings.HasPrefix(target, "anon_inode:"):
		return manifest.AnonKind(strings.Trim(strings.TrimPrefix(target, "anon_inode:"), "[]"))
	case strings.HasPrefix(target, "/"):
		return manifest.KindFile
	}
	return manifest.KindUnknown
}
