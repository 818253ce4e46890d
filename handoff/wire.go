package handoff

import (
	"errors"
	"fmt"
	"strings"
)

// ProtocolVersion is the version of the wire protocol this package speaks.
// Every message header carries it; a peer that receives a higher version
// answers ERROR and closes the connection.
const ProtocolVersion = 1

// Magic is the first four bytes of every message: "LUOH" on the wire, which
// is this value read as a little-endian uint32.
const Magic uint32 = 0x484F554C

// Limits of the protocol. A receiver rejects any message that exceeds them.
const (
	HeaderSize     = 12    // bytes of the fixed header before the payload
	MaxPayload     = 32768 // bytes of payload in one message
	MaxBatch       = 64    // fds (and names) in one FDS message
	MaxFiles       = 16384 // fds in one transfer (all FDS messages up to DONE): 10,000 memfds in one workload, with room
	MaxNameLen     = 255   // bytes of an fd name (see ValidateName)
	MaxWorkloadLen = 55    // bytes of a workload name (see ValidateWorkload)
	MaxTextLen     = 4096  // bytes of the text of an ACK or ERROR
)

// Direction tells which way the fds of a connection travel.
type Direction uint8

const (
	// DirectionPush means the workload sends its fds to luoinit (before a
	// kexec).
	DirectionPush Direction = 1
	// DirectionPull means luoinit sends the workload its fds (after a
	// kexec).
	DirectionPull Direction = 2
)

func (d Direction) String() string {
	switch d {
	case DirectionPush:
		return "push"
	case DirectionPull:
		return "pull"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}

// msgType is the type field of the header.
type msgType uint16

const (
	typeHello msgType = 1
	typeFDs   msgType = 2
	typeDone  msgType = 3
	typeAck   msgType = 4
	typeError msgType = 5
)

func (t msgType) String() string {
	switch t {
	case typeHello:
		return "HELLO"
	case typeFDs:
		return "FDS"
	case typeDone:
		return "DONE"
	case typeAck:
		return "ACK"
	case typeError:
		return "ERROR"
	}
	return fmt.Sprintf("type %d", uint16(t))
}

// ACK status values.
const (
	ackOK    uint8 = 0
	ackError uint8 = 1
)

// message is one decoded protocol message. Which fields are meaningful
// depends on typ.
type message struct {
	typ   msgType
	hello Hello    // HELLO
	names []string // FDS: the names of the attached fds, in order
	count uint32   // DONE: fds sent in the whole transfer
	ok    bool     // ACK: status ok
	fd    string   // ACK error: the fd at fault, "" if none
	text  string   // ACK error message; ERROR text
}

// ErrProtocol is wrapped by every error about a message that breaks the
// protocol: bad magic, bad length, a name out of limits, an unexpected
// message, fds that do not match their names.
var ErrProtocol = errors.New("protocol violation")

// ErrVersion is wrapped by the error for a message of a protocol version
// this side does not speak.
var ErrVersion = errors.New("unsupported protocol version")

func protocolErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

func validateText(what, text string) error {
	switch {
	case len(text) == 0:
		return protocolErrorf("empty %s", what)
	case len(text) > MaxTextLen:
		return protocolErrorf("%s is %d bytes long (at most %d)", what, len(text), MaxTextLen)
	case strings.IndexByte(text, 0) >= 0:
		return protocolErrorf("%s contains a NUL byte", what)
	}
	return nil
}

// quoteShort quotes s for an error message, cut to 40 bytes.
func quoteShort(s string) string {
	if len(s) > 40 {
		return fmt.Sprintf("%q...", s[:40])
	}
	return fmt.Sprintf("%q", s)
}

// cleanText makes s fit an ACK or ERROR text: NUL bytes become '?', it is
// cut to MaxTextLen bytes without splitting a UTF-8 sequence, and an empty
// text becomes "error".
func cleanText(s string) string {
	s = strings.ReplaceAll(s, "\x00", "?")
	if len(s) > MaxTextLen {
		cut := MaxTextLen
		for cut > MaxTextLen-4 && cut > 0 && s[cut]&0xC0 == 0x80 {
			cut--
		}
		s = s[:cut]
	}
	if s == "" {
		s = "error"
	}
	return s
}
