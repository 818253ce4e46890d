package handoff

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Listener serves a SOCK_SEQPACKET unix socket at a path.
type Listener struct {
	ul       *net.UnixListener
	path     string
	dev, ino uint64 // of the socket file this Listener made
	timeout  time.Duration
}

// maxPathLen is the longest socket path sockaddr_un takes (sun_path is 108
// bytes with the NUL).
const maxPathLen = 107

// Listen serves a SOCK_SEQPACKET unix socket at path with mode 0600. A
// socket file left there by a listener that is gone is removed first; a
// live listener or a file that is not a socket is an error.
func Listen(path string) (*Listener, error) { return ListenMode(path, 0o600) }

// ListenMode is Listen with the socket file's permission bits: who may
// connect. A socket open to other users (0666) needs a check of every
// connection's credentials (Conn.Peer) in their place. The mode is set
// before the socket accepts anything and does not depend on the umask.
func ListenMode(path string, perm os.FileMode) (*Listener, error) {
	step := "listening on " + path
	fail := func(err error) (*Listener, error) { return nil, &Error{Step: step, Err: err} }
	if len(path) > maxPathLen {
		return fail(fmt.Errorf("socket path is %d bytes long (at most %d)", len(path), maxPathLen))
	}
	if err := removeStale(path); err != nil {
		return fail(err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return fail(fmt.Errorf("socket(AF_UNIX, SOCK_SEQPACKET): %w", err))
	}
	// The socket file appears at bind(2), before listen(2): a client that
	// sees it and connects in between gets ECONNREFUSED. So bind under a
	// temporary name and rename it into place once listening, unless the
	// temporary name would not fit in sun_path.
	final := path
	if tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".new"); len(tmp) <= maxPathLen {
		os.Remove(tmp)
		path = tmp
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return fail(fmt.Errorf("bind(fd %d, %s): %w", fd, path, err))
	}
	// Nobody can connect before listen(2), so the mode is right before the
	// socket is reachable whatever the umask.
	var st unix.Stat_t
	if err := unix.Chmod(path, uint32(perm.Perm())); err != nil {
		unix.Close(fd)
		os.Remove(path)
		return fail(fmt.Errorf("chmod(%s, %#o): %w", path, perm.Perm(), err))
	}
	if err := unix.Lstat(path, &st); err != nil {
		unix.Close(fd)
		os.Remove(path)
		return fail(fmt.Errorf("lstat(%s): %w", path, err))
	}
	if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
		unix.Close(fd)
		os.Remove(path)
		return fail(fmt.Errorf("listen(fd %d): %w", fd, err))
	}
	if path != final {
		if err := unix.Rename(path, final); err != nil {
			unix.Close(fd)
			os.Remove(path)
			return fail(fmt.Errorf("rename(%s, %s): %w", path, final, err))
		}
		path = final
	}
	f := os.NewFile(uintptr(fd), path)
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		os.Remove(path)
		return fail(err)
	}
	ul, ok := ln.(*net.UnixListener)
	if !ok {
		ln.Close()
		os.Remove(path)
		return fail(fmt.Errorf("not a unix listener (%T)", ln))
	}
	ul.SetUnlinkOnClose(false)
	return &Listener{ul: ul, path: path, dev: uint64(st.Dev), ino: st.Ino}, nil
}

// removeStale removes a socket file at path that nobody listens on.
func removeStale(path string) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("lstat(%s): %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Errorf("%s exists and is not a socket; not removing it", path)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("socket(AF_UNIX, SOCK_SEQPACKET): %w", err)
	}
	err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
	unix.Close(fd)
	switch {
	case err == nil || errors.Is(err, unix.EAGAIN):
		return fmt.Errorf("%s is in use: a listener accepts connections on it", path)
	case errors.Is(err, unix.ECONNREFUSED):
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing stale socket: %w", err)
		}
		return nil
	case errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.EPROTOTYPE):
		return fmt.Errorf("%s is in use by a socket of another type", path)
	}
	return fmt.Errorf("checking whether %s is stale: connect: %w", path, err)
}

// Path is the socket path the Listener serves.
func (l *Listener) Path() string { return l.path }

// SetDeadline sets the time by which Accept must have a connection; the
// zero time means none.
func (l *Listener) SetDeadline(t time.Time) error {
	var d time.Duration
	if !t.IsZero() {
		d = time.Until(t).Round(time.Millisecond)
	}
	if err := l.ul.SetDeadline(t); err != nil {
		return &Error{Step: "setting a deadline on " + l.path, Err: err}
	}
	l.timeout = d
	return nil
}

// Accept waits for the next connection.
func (l *Listener) Accept() (*Conn, error) {
	step := "waiting for a connection on " + l.path
	uc, err := l.ul.AcceptUnix()
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = &timeoutError{d: l.timeout}
		}
		return nil, &Error{Step: step, Err: err}
	}
	c, err := newConn(uc)
	if err != nil {
		return nil, &Error{Step: step, Err: err}
	}
	return c, nil
}

// Close stops listening and removes the socket file, unless another file
// has replaced it in the meantime.
func (l *Listener) Close() error {
	err := l.ul.Close()
	var st unix.Stat_t
	if unix.Lstat(l.path, &st) == nil && uint64(st.Dev) == l.dev && st.Ino == l.ino {
		if rerr := os.Remove(l.path); rerr != nil && err == nil {
			err = rerr
		}
	}
	if err != nil {
		return &Error{Step: "closing the listener on " + l.path, Err: err}
	}
	return nil
}
