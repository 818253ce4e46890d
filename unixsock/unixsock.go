// Package unixsock serves AF_UNIX sockets at a path in the file system
// safely, and reads the control messages that come with their messages.
//
//	ln, file, err := unixsock.Listen("/run/x.sock", unixsock.Config{Type: unix.SOCK_SEQPACKET, Perm: 0o600})
//	if err != nil { ... }
//	defer func() { ln.Close(); file.Remove() }()
//	// a datagram socket: conn, file, err := unixsock.ListenPacket(path, unixsock.Config{Type: unix.SOCK_DGRAM, Perm: 0o600, PassCred: true})
//	// after recvmsg: fds, cred := unixsock.ParseControl(oob[:oobn])
//
// The rule, in one place: a socket file left at the path by a process
// that is gone is removed, but a live socket, a socket of another type or
// anything that is not a socket is left alone and is an error. The socket
// is bound under a temporary name beside the path, given its mode (and
// owner) and made listening there, then renamed into place, so that a
// client that finds the path connects at once, and never to a socket with
// the wrong mode, whatever the umask. The socket file is removed later
// only if it is still the one this process made.
package unixsock

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// MaxPathLen is the longest socket path sockaddr_un takes (sun_path is 108
// bytes with the NUL).
const MaxPathLen = 107

// Config says what socket to serve.
type Config struct {
	// Type is unix.SOCK_STREAM, unix.SOCK_SEQPACKET or unix.SOCK_DGRAM.
	Type int
	// Perm is the socket file's permission bits: who may connect (or
	// send). It is set before the socket is reachable at its path and does
	// not depend on the umask.
	Perm os.FileMode
	// Owner, if set, is given the socket file (lchown) before it is
	// reachable at its path.
	Owner *Owner
	// PassCred turns SO_PASSCRED on before the socket is bound, so that
	// no message can arrive without the sender's credentials.
	PassCred bool
}

// Owner is a socket file's owner.
type Owner struct{ UID, GID int }

// File is a socket file this process made.
type File struct {
	path     string
	dev, ino uint64
}

// Path is where the socket file is.
func (f *File) Path() string { return f.path }

// Remove removes the socket file, unless another file has replaced it.
func (f *File) Remove() error {
	var st unix.Stat_t
	if unix.Lstat(f.path, &st) != nil || uint64(st.Dev) != f.dev || st.Ino != f.ino {
		return nil
	}
	if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Listen serves a SOCK_STREAM or SOCK_SEQPACKET socket at path (see the
// package comment for the rule). The listener does not remove the socket
// file when closed: File.Remove does, if it is still this one.
func Listen(path string, cfg Config) (*net.UnixListener, *File, error) {
	if cfg.Type != unix.SOCK_STREAM && cfg.Type != unix.SOCK_SEQPACKET {
		return nil, nil, fmt.Errorf("unixsock.Listen: socket type %d is not SOCK_STREAM or SOCK_SEQPACKET", cfg.Type)
	}
	ul, file, err := open(path, cfg, func(f *os.File) (*net.UnixListener, error) {
		return as[*net.UnixListener](net.FileListener(f))
	})
	if err != nil {
		return nil, nil, err
	}
	ul.SetUnlinkOnClose(false)
	return ul, file, nil
}

// ListenPacket serves a SOCK_DGRAM socket at path (see the package
// comment for the rule). Closing the connection does not remove the
// socket file: File.Remove does, if it is still this one.
func ListenPacket(path string, cfg Config) (*net.UnixConn, *File, error) {
	if cfg.Type != unix.SOCK_DGRAM {
		return nil, nil, fmt.Errorf("unixsock.ListenPacket: socket type %d is not SOCK_DGRAM", cfg.Type)
	}
	return open(path, cfg, func(f *os.File) (*net.UnixConn, error) {
		return as[*net.UnixConn](net.FileConn(f))
	})
}

// open binds the socket of cfg at path and makes the net value of it
// with wrap (from a duplicate of the fd); the socket file is removed if
// wrap fails.
func open[T any](path string, cfg Config, wrap func(*os.File) (T, error)) (T, *File, error) {
	var zero T
	fd, file, err := bind(path, cfg)
	if err != nil {
		return zero, nil, err
	}
	f := os.NewFile(uintptr(fd), path)
	v, err := wrap(f)
	f.Close()
	if err != nil {
		file.Remove()
		return zero, nil, err
	}
	return v, file, nil
}

// as is c as a T, or an error (with c closed) if it is not one.
func as[T any, C io.Closer](c C, err error) (T, error) {
	var zero T
	if err != nil {
		return zero, err
	}
	t, ok := any(c).(T)
	if !ok {
		c.Close()
		return zero, fmt.Errorf("not a %T but a %T", zero, c)
	}
	return t, nil
}

// bind makes the socket of cfg reachable at path: bound under a temporary
// name, its options, mode and owner set, listening unless it is SOCK_DGRAM,
// then renamed into place. It returns the socket (close-on-exec,
// non-blocking) and its file.
func bind(path string, cfg Config) (int, *File, error) {
	if len(path) > MaxPathLen {
		return -1, nil, fmt.Errorf("socket path is %d bytes long (at most %d)", len(path), MaxPathLen)
	}
	if err := removeStale(path, cfg.Type); err != nil {
		return -1, nil, err
	}
	// The socket file appears at bind(2), before listen(2): a client that
	// sees it and connects in between gets ECONNREFUSED, and one that
	// comes before the chmod finds the umask's mode. So bind under a
	// temporary name and rename it into place once ready, unless the
	// temporary name would not fit in sun_path.
	at := path
	if tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".new"); len(tmp) <= MaxPathLen {
		if err := removeStale(tmp, cfg.Type); err != nil {
			return -1, nil, err
		}
		at = tmp
	}
	name := typeName(cfg.Type)
	fd, err := unix.Socket(unix.AF_UNIX, cfg.Type|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, nil, fmt.Errorf("socket(AF_UNIX, %s): %w", name, err)
	}
	bound := false
	fail := func(err error) (int, *File, error) {
		unix.Close(fd)
		if bound {
			unix.Unlink(at)
		}
		return -1, nil, err
	}
	if cfg.PassCred {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
			return fail(fmt.Errorf("setsockopt(fd %d, SO_PASSCRED, 1): %w", fd, err))
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: at}); err != nil {
		return fail(fmt.Errorf("bind(fd %d, %s): %w", fd, at, err))
	}
	bound = true
	// Nobody can connect before listen(2) (nor find the temporary name's
	// socket under the final one), so the mode is right before the socket
	// is reachable whatever the umask.
	perm := uint32(cfg.Perm.Perm())
	if err := unix.Chmod(at, perm); err != nil {
		return fail(fmt.Errorf("chmod(%s, %#o): %w", at, perm, err))
	}
	if o := cfg.Owner; o != nil && (o.UID != os.Geteuid() || o.GID != os.Getegid()) {
		if err := unix.Lchown(at, o.UID, o.GID); err != nil {
			return fail(fmt.Errorf("lchown(%s, %d, %d): %w", at, o.UID, o.GID, err))
		}
	}
	var st unix.Stat_t
	if err := unix.Lstat(at, &st); err != nil {
		return fail(fmt.Errorf("lstat(%s): %w", at, err))
	}
	if cfg.Type != unix.SOCK_DGRAM {
		if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
			return fail(fmt.Errorf("listen(fd %d): %w", fd, err))
		}
	}
	if at != path {
		if err := unix.Rename(at, path); err != nil {
			return fail(fmt.Errorf("rename(%s, %s): %w", at, path, err))
		}
	}
	return fd, &File{path: path, dev: uint64(st.Dev), ino: st.Ino}, nil
}

// removeStale removes a socket file at path that nobody serves, judged by
// connecting to it with a socket of type typ.
func removeStale(path string, typ int) error {
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
	fd, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("socket(AF_UNIX, %s): %w", typeName(typ), err)
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

func typeName(typ int) string {
	switch typ {
	case unix.SOCK_STREAM:
		return "SOCK_STREAM"
	case unix.SOCK_SEQPACKET:
		return "SOCK_SEQPACKET"
	case unix.SOCK_DGRAM:
		return "SOCK_DGRAM"
	}
	return fmt.Sprintf("type %d", typ)
}
