package luo

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Error is what every operation of this package returns on failure. It
// names the operation, the session and the token involved, and wraps the
// errno, so that callers can test errors.Is(err, unix.ENOENT) and a person
// can read the line.
type Error struct {
	Op      string // "open", "create session", "preserve fd", ...
	Path    string // device path, for Op "open"
	Session string // session name, when known
	Token   uint64 // token, when HasToken
	// HasToken tells whether Token is meaningful (0 is a valid token).
	HasToken bool
	FD       int    // the fd passed to the kernel, for "preserve fd"; -1 if none
	Syscall  string // the syscall and its arguments, e.g. "ioctl(5, 0xba40)"
	Hint     string // what the errno most likely means here
	Err      error  // the errno or validation error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("luo: ")
	b.WriteString(e.Op)
	if e.Path != "" {
		fmt.Fprintf(&b, " %s", e.Path)
	}
	if e.Session != "" {
		if strings.HasSuffix(e.Op, "session") {
			fmt.Fprintf(&b, " %q", e.Session)
		} else {
			fmt.Fprintf(&b, " session %q", e.Session)
		}
	}
	if e.HasToken {
		fmt.Fprintf(&b, " token %d", e.Token)
	}
	if e.FD >= 0 {
		fmt.Fprintf(&b, " fd %d", e.FD)
	}
	if e.Syscall != "" {
		fmt.Fprintf(&b, ": %s", e.Syscall)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	var errno unix.Errno
	if errors.As(e.Err, &errno) {
		fmt.Fprintf(&b, " (%s)", unix.ErrnoName(errno))
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, ": %s", e.Hint)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// newError is the one constructor of Error: op on session, no fd and no
// token until said otherwise (withToken, withFD), failing with err. An
// errno gets its hint here.
func newError(op, session string, err error) *Error {
	e := &Error{Op: op, Session: session, FD: -1, Err: err}
	var errno unix.Errno
	if errors.As(err, &errno) {
		e.Hint = hint(op, errno)
	}
	return e
}

// withToken records the token the operation was about.
func (e *Error) withToken(token uint64) *Error {
	e.Token, e.HasToken = token, true
	return e
}

// withFD records the fd passed to the kernel.
func (e *Error) withFD(fd int) *Error {
	e.FD = fd
	return e
}

// withSyscall records the syscall that failed, with its arguments.
func (e *Error) withSyscall(format string, args ...any) *Error {
	e.Syscall = fmt.Sprintf(format, args...)
	return e
}

// ErrInvalidName is wrapped by the error for a session name that the
// kernel would reject; no ioctl is made with it.
var ErrInvalidName = errors.New("invalid session name")

// ErrClosed is wrapped by the error for an operation on a closed Device or
// Session.
var ErrClosed = errors.New("already closed")

// ErrGetNameUnsupported is wrapped when the running kernel has no
// GET_NAME ioctl (kernels before it was added answer ENOTTY).
var ErrGetNameUnsupported = errors.New("kernel lacks LIVEUPDATE_SESSION_GET_NAME")

// hint explains an errno in the context of an operation.
func hint(op string, errno unix.Errno) string {
	switch {
	case op == "open" && errno == unix.ENOENT:
		return "the kernel has no LUO (CONFIG_LIVEUPDATE) or was booted without liveupdate=on"
	case op == "open" && errno == unix.EBUSY:
		return "another process holds /dev/liveupdate open; it allows one opener at a time"
	case op == "open" && (errno == unix.EACCES || errno == unix.EPERM):
		return "opening /dev/liveupdate needs root"
	case op == "create session" && errno == unix.EEXIST:
		return "a session of that name already exists"
	case op == "retrieve session" && errno == unix.ENOENT:
		return "no session of that name was preserved by the previous kernel"
	case op == "retrieve session" && errno == unix.EINVAL:
		return "the session was already retrieved in this boot"
	case op == "preserve fd" && (errno == unix.EOPNOTSUPP || errno == unix.EINVAL || errno == unix.ENOENT || errno == unix.EBADF):
		return "the kernel cannot preserve this kind of file (only memfds are supported)"
	case op == "preserve fd" && errno == unix.EEXIST:
		return "the token or the file is already preserved in this session"
	case op == "retrieve fd" && errno == unix.ENOENT:
		return "no file was preserved under this token"
	}
	return ""
}
