package pid1

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// SyscallError is a failed system call, named with its arguments the way
// strace shows it: `mkdir("/run", 0755) = EROFS (read-only file system)`.
// It wraps the errno, so errors.Is(err, unix.EROFS) works.
type SyscallError struct {
	Call string // the call and its arguments: `kill(-1, SIGTERM)`
	Err  error
}

func (e *SyscallError) Error() string { return e.Call + " = " + errnoText(e.Err) }

func (e *SyscallError) Unwrap() error { return e.Err }

func syscallErr(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return &SyscallError{Call: fmt.Sprintf(format, args...), Err: err}
}

// errnoText is "ENODEV (no such device)" for an errno, err.Error() for
// anything else.
func errnoText(err error) string {
	var errno unix.Errno
	if errors.As(err, &errno) {
		if name := unix.ErrnoName(errno); name != "" {
			return fmt.Sprintf("%s (%v)", name, errno)
		}
		return fmt.Sprintf("errno %d (%v)", int(errno), errno)
	}
	if err == nil {
		return "0"
	}
	return err.Error()
}

// signalName is "SIGTERM", or "signal 40" for one unix has no name for.
func signalName(sig unix.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	return fmt.Sprintf("signal %d", int(sig))
}

// describeStatus says how a child ended, for a log line or an error.
func describeStatus(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exited with status %d", ws.ExitStatus())
	case ws.Signaled() && ws.CoreDump():
		return fmt.Sprintf("killed by %s (core dumped)", signalName(ws.Signal()))
	case ws.Signaled():
		return fmt.Sprintf("killed by %s", signalName(ws.Signal()))
	default:
		return fmt.Sprintf("wait status %#x", uint32(ws))
	}
}
