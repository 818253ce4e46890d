package unixsock

import (
	"encoding/binary"
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ControlSpace is the room recvmsg needs for up to maxFDs fds
// (SCM_RIGHTS) and the sender's credentials (SCM_CREDENTIALS, which every
// message carries once SO_PASSCRED is on): without the latter a message
// with the most fds would be truncated.
func ControlSpace(maxFDs int) int {
	return unix.CmsgSpace(maxFDs*4) + unix.CmsgSpace(unix.SizeofUcred)
}

// ParseControl returns the fds of every SCM_RIGHTS message in oob and the
// last SCM_CREDENTIALS, if any. It reads whatever the kernel wrote, even
// after a truncation (MSG_CTRUNC) cut a message short, so that every fd
// that arrived can be closed; it never reads past oob.
func ParseControl(oob []byte) (fds []int, cred *unix.Ucred) {
	hdr := unix.CmsgLen(0)
	for len(oob) >= hdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < hdr {
			break
		}
		l = min(l, len(oob))
		data := oob[hdr:l]
		switch {
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_RIGHTS:
			for ; len(data) >= 4; data = data[4:] {
				fds = append(fds, int(int32(binary.NativeEndian.Uint32(data))))
			}
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_CREDENTIALS && len(data) >= unix.SizeofUcred:
			uc := *(*unix.Ucred)(unsafe.Pointer(&data[0]))
			cred = &uc
		}
		next := unix.CmsgSpace(l - hdr)
		if next >= len(oob) {
			break
		}
		oob = oob[next:]
	}
	return fds, cred
}

// PeerCred returns the credentials of the process that made the other end
// of a connected socket (SO_PEERCRED).
func PeerCred(rc syscall.RawConn) (*unix.Ucred, error) {
	var uc *unix.Ucred
	var gerr error
	var sfd int
	if err := rc.Control(func(fd uintptr) {
		sfd = int(fd)
		uc, gerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	if gerr != nil {
		return nil, fmt.Errorf("getsockopt(fd %d, SO_PEERCRED): %w", sfd, gerr)
	}
	return uc, nil
}
