// Package luo talks to the Linux Live Update Orchestrator through
// /dev/liveupdate (include/uapi/linux/liveupdate.h, Linux 6.19 and later).
//
// Before a kexec, preserve a memfd in a named session and keep the session
// open until reboot(LINUX_REBOOT_CMD_KEXEC):
//
//	dev, err := luo.Open(luo.DefaultPath)
//	s, err := dev.CreateSession("kvcache")
//	err = s.PreserveFD(int(memfd.Fd()), 1)
//
// After the kexec, get it back by name and token and release the kernel's
// hold:
//
//	s, err := dev.RetrieveSession("kvcache")
//	f, err := s.RetrieveFD(1)
//	err = s.Finish()
//
// /dev/liveupdate admits one opener at a time: close the Device as soon as
// its sessions are created or retrieved. Session fds stay valid after the
// Device is closed. Closing a Session before the kexec unpreserves
// everything in it.
//
// Every error is an *Error that names the operation, session and token and
// wraps the errno.
package luo

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ValidateName reports whether name can be a session name: 1 to NameMax
// bytes and no NUL byte. The kernel takes any other bytes.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidName)
	case len(name) > NameMax:
		return fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidName, len(name), NameMax)
	}
	for i := 0; i < len(name); i++ {
		if name[i] == 0 {
			return fmt.Errorf("%w: NUL byte at offset %d", ErrInvalidName, i)
		}
	}
	return nil
}

// ioctl issues one LUO ioctl whose argument is *arg and returns the errno,
// 0 on success.
func ioctl[T any](fd int, req uintptr, arg *T) unix.Errno {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(unsafe.Pointer(arg)))
	return errno
}

// ioctlError is the Error of a failed ioctl on fd.
func ioctlError(op, session string, fd int, req uintptr, errno unix.Errno) *Error {
	return newError(op, session, errno).withSyscall("ioctl(%d, %#x)", fd, req)
}

// nameBytes returns name as the kernel's NUL-terminated array.
func nameBytes(name string) [sessionNameLength]byte {
	var b [sessionNameLength]byte
	copy(b[:], name)
	return b
}

// cString returns the bytes of b up to its first NUL.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// Device is an open /dev/liveupdate.
type Device struct {
	f    *os.File
	path string
}

// Open opens the LUO device at path (normally DefaultPath). ENOENT means the
// kernel lacks LUO or was booted without liveupdate=on; EBUSY means another
// process holds the device.
func Open(path string) (*Device, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		e := newError("open", "", err).withSyscall("open(%q, O_RDWR|O_CLOEXEC)", path)
		e.Path = path
		return nil, e
	}
	return &Device{f: os.NewFile(uintptr(fd), path), path: path}, nil
}

// Path returns the path the device was opened at.
func (d *Device) Path() string { return d.path }

// Close closes the device fd. Sessions created or retrieved through it
// stay open.
func (d *Device) Close() error {
	if d.f == nil {
		return nil
	}
	err := d.f.Close()
	d.f = nil
	return err
}

// CreateSession creates a new session. The session's resources survive a
// kexec only while the returned Session stays open.
func (d *Device) CreateSession(name string) (*Session, error) {
	return d.session("create session", ioctlCreateSession, name)
}

// RetrieveSession gets back a session that the previous kernel preserved.
// It fails with ENOENT when no such session came through the live update.
func (d *Device) RetrieveSession(name string) (*Session, error) {
	return d.session("retrieve session", ioctlRetrieveSession, name)
}

func (d *Device) session(op string, req uintptr, name string) (*Session, error) {
	if err := ValidateName(name); err != nil {
		return nil, newError(op, name, err)
	}
	if d.f == nil {
		return nil, newError(op, name, ErrClosed)
	}
	fd := int(d.f.Fd())
	arg := createSessionArg{Size: sizeOf[createSessionArg](), FD: -1, Name: nameBytes(name)}
	if errno := ioctl(fd, req, &arg); errno != 0 {
		return nil, ioctlError(op, name, fd, req, errno)
	}
	// The kernel installs session fds with O_CLOEXEC; make sure of it, so
	// that no child started later inherits a session by accident.
	unix.CloseOnExec(int(arg.FD))
	return &Session{f: os.NewFile(uintptr(arg.FD), "liveupdate-session:"+name), name: name}, nil
}
