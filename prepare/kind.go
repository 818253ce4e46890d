package prepare

import (
	"fmt"
	"os"
	"strings"

	"github.com/luoinit/luoinit/manifest"
)

// Kind names the type of an open file for the manifest and for errors:
// one of manifest.Kinds, or manifest.AnonKind of an anon inode's name.
func Kind(f *os.File) string {
	target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		return manifest.KindUnknown
	}
	return kindOf(target)
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
