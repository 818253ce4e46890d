package luo

import (
	"fmt"
	"os"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Session is an open LUO session fd.
type Session struct {
	f    *os.File
	name string
}

// NewSession wraps a session fd received from elsewhere (for example over
// a unix socket). name is what errors will call it; it is not checked with
// the kernel (use GetName for that).
func NewSession(f *os.File, name string) *Session {
	return &Session{f: f, name: name}
}

// Name returns the name the session was created or retrieved with.
func (s *Session) Name() string { return s.name }

// File returns the session's fd. It stays owned by the Session.
func (s *Session) File() *os.File { return s.f }

// Close closes the session fd. Before a kexec this unpreserves every file
// in the session; after one, unfinished resources stay with the kernel
// until the next live update.
func (s *Session) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

func (s *Session) fd(op string, token uint64, hasToken bool) (int, error) {
	if s.f == nil {
		e := newError(op, s.name, ErrClosed)
		if hasToken {
			e.withToken(token)
		}
		return -1, e
	}
	return int(s.f.Fd()), nil
}

// PreserveFD marks fd for preservation across the next kexec under token.
// Tokens are chosen by the caller and must be unique within the session.
// The kernel refuses files it cannot preserve (today: anything but a
// memfd) with an errno the returned error wraps.
func (s *Session) PreserveFD(fd int, token uint64) error {
	const op = "preserve fd"
	sfd, err := s.fd(op, token, true)
	if err != nil {
		return err
	}
	arg := preserveFDArg{Size: sizeOf[preserveFDArg](), FD: int32(fd), Token: token}
	if errno := ioctl(sfd, ioctlPreserveFD, &arg); errno != 0 {
		return ioctlError(op, s.name, sfd, ioctlPreserveFD, errno).withToken(token).withFD(fd)
	}
	return nil
}

// RetrieveFD gets back the file preserved under token in the previous
// kernel. The returned file has close-on-exec set. A retrieve that failed
// once fails the same way again.
func (s *Session) RetrieveFD(token uint64) (*os.File, error) {
	const op = "retrieve fd"
	sfd, err := s.fd(op, token, true)
	if err != nil {
		return nil, err
	}
	arg := retrieveFDArg{Size: sizeOf[retrieveFDArg](), FD: -1, Token: token}
	if errno := ioctl(sfd, ioctlRetrieveFD, &arg); errno != 0 {
		return nil, ioctlError(op, s.name, sfd, ioctlRetrieveFD, errno).withToken(token)
	}
	// A retrieved fd must not leak into a child that was not meant to
	// have it. The fd's own FD_CLOEXEC does not survive the live update,
	// but the kernel installs the new fd with O_CLOEXEC: that is looked at
	// once, on the first fd, and set by hand on every fd of a kernel that
	// does not (one fcntl per fd saved where thousands are retrieved).
	if !kernelSetsCloexec(int(arg.FD)) {
		if _, err := unix.FcntlInt(uintptr(arg.FD), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
			unix.Close(int(arg.FD))
			return nil, newError(op, s.name, err).withToken(token).withFD(int(arg.FD)).
				withSyscall("fcntl(%d, F_SETFD, FD_CLOEXEC)", arg.FD)
		}
	}
	return os.NewFile(uintptr(arg.FD), "liveupdate:"+s.name+":"+strconv.FormatUint(token, 10)), nil
}

// retrievedCloexec is what the first retrieved fd showed: 0 not looked
// at yet, 1 the kernel sets FD_CLOEXEC, 2 it does not.
var retrievedCloexec atomic.Int32

// kernelSetsCloexec reports whether the kernel gave fd (just retrieved)
// FD_CLOEXEC; after the first fd, without a syscall. Every kernel since
// LUO's first installs retrieved fds with O_CLOEXEC; one that did not, or
// an fcntl that fails, makes every fd get it by hand.
func kernelSetsCloexec(fd int) bool {
	switch retrievedCloexec.Load() {
	case 1:
		return true
	case 2:
		return false
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	sets := err == nil && flags&unix.FD_CLOEXEC != 0
	if sets {
		retrievedCloexec.Store(1)
	} else {
		retrievedCloexec.Store(2)
	}
	return sets
}

// Finish tells the kernel that every file of this retrieved session has
// been restored, releasing its hold on them. If it fails, the resources
// stay preserved and Finish may be called again.
func (s *Session) Finish() error {
	const op = "finish"
	sfd, err := s.fd(op, 0, false)
	if err != nil {
		return err
	}
	arg := finishArg{Size: sizeOf[finishArg]()}
	if errno := ioctl(sfd, ioctlFinish, &arg); errno != 0 {
		return ioctlError(op, s.name, sfd, ioctlFinish, errno)
	}
	return nil
}

// GetName asks the kernel for the session's full name. Kernels without
// the GET_NAME ioctl make it return an error wrapping both
// ErrGetNameUnsupported and unix.ENOTTY; callers then use Name.
func (s *Session) GetName() (string, error) {
	const op = "get name"
	sfd, err := s.fd(op, 0, false)
	if err != nil {
		return "", err
	}
	arg := getNameArg{Size: sizeOf[getNameArg]()}
	if errno := ioctl(sfd, ioctlGetName, &arg); errno != 0 {
		var err error = errno
		if errno == unix.ENOTTY || errno == unix.EINVAL {
			err = fmt.Errorf("%w: %w", ErrGetNameUnsupported, errno)
		}
		return "", newError(op, s.name, err).withSyscall("ioctl(%d, %#x)", sfd, ioctlGetName)
	}
	return cString(arg.Name[:]), nil
}
