package luo

import "unsafe"

// This file mirrors include/uapi/linux/liveupdate.h. The layout test
// (uapi_test.go) compiles a C program against the kernel's own header and
// compares every size, offset and ioctl number below with it.

// DefaultPath is the LUO character device.
const DefaultPath = "/dev/liveupdate"

// NameMax is the longest session name in bytes, not counting the NUL
// terminator the kernel needs (LIVEUPDATE_SESSION_NAME_LENGTH - 1).
const NameMax = sessionNameLength - 1

const (
	ioctlType         = 0xBA
	sessionNameLength = 64

	cmdCreateSession   = 0x00
	cmdRetrieveSession = 0x01
	cmdPreserveFD      = 0x40
	cmdRetrieveFD      = 0x41
	cmdFinish          = 0x42
	cmdGetName         = 0x43
)

// ioc builds an _IO(type, nr) request number: the LUO ioctls carry no
// direction or size bits; the size travels in the argument's first field.
func ioc(nr uintptr) uintptr { return ioctlType<<8 | nr }

// The ioctl request numbers.
var (
	ioctlCreateSession   = ioc(cmdCreateSession)
	ioctlRetrieveSession = ioc(cmdRetrieveSession)
	ioctlPreserveFD      = ioc(cmdPreserveFD)
	ioctlRetrieveFD      = ioc(cmdRetrieveFD)
	ioctlFinish          = ioc(cmdFinish)
	ioctlGetName         = ioc(cmdGetName)
)

// createSessionArg is struct liveupdate_ioctl_create_session and, with the
// same layout, struct liveupdate_ioctl_retrieve_session.
type createSessionArg struct {
	Size uint32
	FD   int32
	Name [sessionNameLength]byte
}

type retrieveSessionArg = createSessionArg

// preserveFDArg is struct liveupdate_session_preserve_fd and, with the same
// layout, struct liveupdate_session_retrieve_fd. Token is __aligned_u64.
type preserveFDArg struct {
	Size  uint32
	FD    int32
	Token uint64
}

type retrieveFDArg = preserveFDArg

// finishArg is struct liveupdate_session_finish.
type finishArg struct {
	Size     uint32
	Reserved uint32
}

// getNameArg is struct liveupdate_session_get_name.
type getNameArg struct {
	Size     uint32
	Reserved uint32
	Name     [sessionNameLength]byte
}

func sizeOf[T any]() uint32 {
	var v T
	return uint32(unsafe.Sizeof(v))
}
