package luo

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A LUO session fd is an anonymous inode. readlink(2) of /proc/PID/fd/N
// gives "anon_inode:[luo_session] NAME" on kernels that name the inode
// after the session (7.2 and 7.3 do: luo_session_getfile), and
// "anon_inode:[luo_session]" on kernels that do not.
const (
	sessionLink       = "anon_inode:[luo_session]"
	sessionLinkPrefix = sessionLink + " "
)

// MaxSessionsPerProcess bounds how many session fds ProcSessions returns
// for one process, so that a hostile process cannot make its scanner
// allocate without limit.
const MaxSessionsPerProcess = 4096

// ErrTooManySessions is wrapped when a process holds more than
// MaxSessionsPerProcess session fds.
var ErrTooManySessions = errors.New("too many LUO session fds")

// ParseSessionLink tells whether link, the target of /proc/PID/fd/N, is a
// LUO session fd, and returns the session name when the link carries one
// ("" when the kernel does not put it there).
func ParseSessionLink(link string) (name string, ok bool) {
	if link == sessionLink {
		return "", true
	}
	name, ok = strings.CutPrefix(link, sessionLinkPrefix)
	if !ok || ValidateName(name) != nil {
		return "", false
	}
	return name, true
}

// IsSession reports whether f is a LUO session fd (created or retrieved
// through /dev/liveupdate), by readlink of /proc/self/fd/N.
func IsSession(f *os.File) (bool, error) {
	link, err := fdLink("self", int(f.Fd()))
	if err != nil {
		return false, err
	}
	_, ok := ParseSessionLink(link)
	return ok, nil
}

// SessionName returns the name of the session whose fd is f. The kernel's
// answer to GET_NAME wins: it is the session's own copy of the name. On a
// kernel without GET_NAME the name comes from the fd's link in /proc
// ("anon_inode:[luo_session] NAME"); a kernel that has neither gives an
// error wrapping ErrGetNameUnsupported. An f that is no session fd gives
// an error wrapping unix.ENOTTY or EINVAL, as the kernel answers.
func SessionName(f *os.File) (string, error) {
	name, err := NewSession(f, "").GetName()
	if err == nil {
		return name, nil
	}
	if !errors.Is(err, ErrGetNameUnsupported) {
		return "", err
	}
	link, lerr := fdLink("self", int(f.Fd()))
	if lerr != nil {
		return "", fmt.Errorf("%w; and %w", err, lerr)
	}
	name, ok := ParseSessionLink(link)
	switch {
	case !ok:
		return "", fmt.Errorf("%w; and fd %d is %q, not a LUO session", err, f.Fd(), link)
	case name == "":
		return "", fmt.Errorf("%w; and the fd's link %q carries no name", err, link)
	}
	return name, nil
}

// ProcSession is a LUO session fd held by a process.
type ProcSession struct {
	FD   int    // the fd number in that process
	Name string // from the fd's link; "" if the kernel does not put it there
}

// ProcSessions lists the LUO session fds that process pid holds, by
// readlink of /proc/PID/fd/*: nothing is opened or taken, so listing
// never changes a session. A process that exits meanwhile gives what was
// seen (or an error wrapping os.ErrNotExist if it was gone at once).
func ProcSessions(pid int) ([]ProcSession, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	var out []ProcSession
	for {
		// Batches keep memory bounded for a process with a million fds.
		names, err := d.Readdirnames(1024)
		for _, n := range names {
			fd, perr := strconv.Atoi(n)
			if perr != nil {
				continue
			}
			link, lerr := fdLink(strconv.Itoa(pid), fd)
			if lerr != nil {
				continue // closed meanwhile
			}
			if name, ok := ParseSessionLink(link); ok {
				if len(out) == MaxSessionsPerProcess {
					return out, fmt.Errorf("pid %d: %w: more than %d", pid, ErrTooManySessions, MaxSessionsPerProcess)
				}
				out = append(out, ProcSession{FD: fd, Name: name})
			}
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("readdir %s: %w", dir, err)
		}
	}
}

// fdLink reads /proc/PROC/fd/FD; PROC is a pid or "self".
func fdLink(proc string, fd int) (string, error) {
	p := "/proc/" + proc + "/fd/" + strconv.Itoa(fd)
	buf := make([]byte, 256)
	n, err := unix.Readlink(p, buf)
	if err != nil {
		return "", &os.PathError{Op: "readlink", Path: p, Err: err}
	}
	return string(buf[:n]), nil
}
