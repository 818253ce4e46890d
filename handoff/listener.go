package handoff

import (
	"errors"
	"net"
	"os"
	"time"

	"github.com/luoinit/luoinit/unixsock"
	"golang.org/x/sys/unix"
)

// Listener serves a SOCK_SEQPACKET unix socket at a path.
type Listener struct {
	ul      *net.UnixListener
	file    *unixsock.File // the socket file this Listener made
	timeout time.Duration
}

// Listen serves a SOCK_SEQPACKET unix socket at path with mode 0600. A
// socket file left there by a listener that is gone is removed first; a
// live listener or a file that is not a socket is an error.
func Listen(path string) (*Listener, error) { return ListenMode(path, 0o600) }

// ListenMode is Listen with the socket file's permission bits: who may
// connect. A socket open to other users (0666) needs a check of every
// connection's credentials (Conn.Peer) in their place. The mode is set
// before the socket accepts anything and does not depend on the umask
// (see package unixsock).
func ListenMode(path string, perm os.FileMode) (*Listener, error) {
	ul, file, err := unixsock.Listen(path, unixsock.Config{Type: unix.SOCK_SEQPACKET, Perm: perm})
	if err != nil {
		return nil, &Error{Step: "listening on " + path, Err: err}
	}
	return &Listener{ul: ul, file: file}, nil
}

// Path is the socket path the Listener serves.
func (l *Listener) Path() string { return l.file.Path() }

// SetDeadline sets the time by which Accept must have a connection; the
// zero time means none.
func (l *Listener) SetDeadline(t time.Time) error {
	var d time.Duration
	if !t.IsZero() {
		d = time.Until(t).Round(time.Millisecond)
	}
	if err := l.ul.SetDeadline(t); err != nil {
		return &Error{Step: "setting a deadline on " + l.Path(), Err: err}
	}
	l.timeout = d
	return nil
}

// Accept waits for the next connection.
func (l *Listener) Accept() (*Conn, error) {
	step := "waiting for a connection on " + l.Path()
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
	if rerr := l.file.Remove(); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		return &Error{Step: "closing the listener on " + l.Path(), Err: err}
	}
	return nil
}
