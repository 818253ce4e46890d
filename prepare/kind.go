package prepare

import (
	"fmt"
	"os"
	"strings"
)

// Kind names the type of an open file for the manifest and for errors:
// "memfd", "pipe", "socket", "anon:<name>", "file" or "unknown".
func Kind(f *os.File) string {
	target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		return "unknown"
	}
	return kindOf(target)
}

func kindOf(target string) string {
	switch {
	case strings.HasPrefix(target, "/memfd:"):
		return "memfd"
	case strings.HasPrefix(target, "pipe:"):
		return "pipe"
	case strings.HasPrefix(target, "socket:"):
		return "socket"
	case strings.HasPrefix(target, "anon_inode:"):
		return "anon:" + strings.Trim(strings.TrimPrefix(target, "anon_inode:"), "[]")
	case strings.HasPrefix(target, "/"):
		return "file"
	}
	return "unknown"
}
