package notify

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// procRoot is where descendant reads /proc; tests point it elsewhere.
var procRoot = "/proc"

// maxDepth bounds the walk up the process tree.
const maxDepth = 4096

// descendant reports whether pid is ancestor or a process below it, by
// walking the parent links of /proc/PID/stat up from pid. A process that
// has exited cannot be placed (systemd has the same limit: a helper that
// sends and exits at once may not be attributed).
func descendant(pid, ancestor int) bool {
	if ancestor <= 0 || pid <= 0 {
		return false
	}
	for depth := 0; depth < maxDepth && pid > 1; depth++ {
		if pid == ancestor {
			return true
		}
		ppid, err := parentOf(pid)
		if err != nil {
			return false
		}
		pid = ppid
	}
	return pid == ancestor
}

// parentOf reads the parent pid from /proc/PID/stat. The command name
// (field 2) may hold spaces and parentheses, so fields are counted after
// the last ')'.
func parentOf(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/stat", procRoot, pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s/%d/stat: no ')'", procRoot, pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, fmt.Errorf("%s/%d/stat: too few fields", procRoot, pid)
	}
	return strconv.Atoi(f[1])
}
