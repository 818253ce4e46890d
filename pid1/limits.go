package pid1

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// FileLimit is the RLIMIT_NOFILE PID 1 gives itself and, by inheritance,
// every workload: a restore holds every preserved fd at once (thousands,
// for a workload with many memfds), and a workload receives as many. The
// kernel starts init with 1024/4096. systemd gives services a hard limit
// of 524288 too; here the soft limit is the same, so that a workload can
// take its fds without raising it first.
const FileLimit = 524288

// RaiseFileLimit sets RLIMIT_NOFILE to FileLimit (or fs.nr_open, if
// lower), soft and hard. If the hard limit cannot be raised (EPERM: not
// root, or a container), the soft limit is raised to the hard one and the
// error says so. It returns the soft limit in force.
func RaiseFileLimit() (uint64, error) {
	n := uint64(FileLimit)
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if max, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && max < n {
			n = max
		}
	}
	lim := unix.Rlimit{Cur: n, Max: n}
	err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	if err == nil {
		return n, nil
	}
	err = syscallErr(err, "setrlimit(RLIMIT_NOFILE, {%d, %d})", n, n)
	var old unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &old) != nil {
		return 0, err
	}
	if old.Cur < old.Max {
		if unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: old.Max, Max: old.Max}) == nil {
			old.Cur = old.Max
		}
	}
	return old.Cur, err
}
