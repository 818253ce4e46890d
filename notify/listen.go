package notify

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The environment of sd_listen_fds(3) and sd_notify(3).
const (
	EnvNotifySocket = "NOTIFY_SOCKET"
	EnvListenFDs    = "LISTEN_FDS"
	EnvListenPID    = "LISTEN_PID"
	EnvListenNames  = "LISTEN_FDNAMES"
)

// ListenFDsStart is the first fd passed (SD_LISTEN_FDS_START).
const ListenFDsStart = 3

// ListenEnv is the environment that passes n fds named names at fds 3,
// 4, ...: LISTEN_FDS and LISTEN_FDNAMES. LISTEN_PID is not in it: only
// the process that runs the workload knows its own pid (see ExecListen).
// Nothing when there are no fds, as systemd sets none then.
func ListenEnv(names []string) []string {
	if len(names) == 0 {
		return nil
	}
	return []string{
		EnvListenFDs + "=" + strconv.Itoa(len(names)),
		EnvListenNames + "=" + strings.Join(names, ":"),
	}
}

// ExecListenArg is the hidden first argument of `luoinit` that makes it
// the shim of ExecListen: `luoinit __exec-listen PROGRAM ARG...`.
const ExecListenArg = "__exec-listen"

// ShimArgv wraps a workload's argv in the shim: self is the luoinit
// binary ("/proc/self/exe" in PID 1, which resolves in the forked child to
// PID 1's own binary even if its path is gone).
func ShimArgv(self string, argv []string) []string {
	return append([]string{self, ExecListenArg}, argv...)
}

// ExecListen is the shim's whole life: it sets LISTEN_PID to its own pid
// and executes argv[0] with its environment and fds as they are. exec
// keeps the pid, so LISTEN_PID names the workload's program, as
// sd_listen_fds(3) requires; a parent cannot set it, since the pid is only
// known after the fork. It returns only on failure: the caller reports it
// and exits 127, as a shell does for a command it cannot run.
func ExecListen(argv []string) error {
	if len(argv) == 0 {
		return fmt.Errorf("%s: no program given", ExecListenArg)
	}
	env := make([]string, 0, len(os.Environ())+1)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, EnvListenPID+"=") {
			env = append(env, kv)
		}
	}
	env = append(env, EnvListenPID+"="+strconv.Itoa(os.Getpid()))
	if err := unix.Exec(argv[0], argv, env); err != nil {
		return fmt.Errorf("execve(%q, %q): %w", argv[0], argv, err)
	}
	return nil
}
