package handoff

import (
	"encoding/binary"
	"fmt"
)

// encodeMessage returns the wire form of m: header and payload. It checks
// m against the same rules as decodeMessage, so that it never produces a
// message a peer would reject.
func encodeMessage(m *message) ([]byte, error) {
	b := appendHeader(make([]byte, 0, HeaderSize+64), m.typ)
	var err error
	switch m.typ {
	case typeHello:
		b, err = appendHello(b, m.hello)
	case typeFDs:
		b, err = appendFDs(b, m.names)
	case typeDone:
		b, err = appendDone(b, m.count)
	case typeAck:
		b, err = appendAck(b, m.ok, m.fd, m.text)
	case typeError:
		b, err = appendError(b, m.text)
	default:
		err = protocolErrorf("unknown message %v", m.typ)
	}
	if err != nil {
		return nil, err
	}
	return setLength(b, m.typ)
}

// appendHeader appends the header of a message of type typ, its length
// left 0 for setLength.
func appendHeader(b []byte, typ msgType) []byte {
	b = binary.LittleEndian.AppendUint32(b, Magic)
	b = binary.LittleEndian.AppendUint16(b, ProtocolVersion)
	b = binary.LittleEndian.AppendUint16(b, uint16(typ))
	return binary.LittleEndian.AppendUint32(b, 0)
}

// setLength checks the payload that follows the header of b against
// MaxPayload and writes its length into the header.
func setLength(b []byte, typ msgType) ([]byte, error) {
	if len(b)-HeaderSize > MaxPayload {
		return nil, protocolErrorf("%v payload of %d bytes (at most %d)", typ, len(b)-HeaderSize, MaxPayload)
	}
	binary.LittleEndian.PutUint32(b[8:12], uint32(len(b)-HeaderSize))
	return b, nil
}

// appendHello appends a HELLO payload: version, direction, workload name.
func appendHello(b []byte, h Hello) ([]byte, error) {
	if h.Version != ProtocolVersion {
		return nil, fmt.Errorf("%w %d in HELLO (this side speaks %d)", ErrVersion, h.Version, ProtocolVersion)
	}
	if h.Direction != DirectionPush && h.Direction != DirectionPull {
		return nil, protocolErrorf("HELLO with %v", h.Direction)
	}
	if err := ValidateWorkload(h.Workload); err != nil {
		return nil, invalidName(err)
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(h.Version))
	b = append(b, uint8(h.Direction), uint8(len(h.Workload)))
	return append(b, h.Workload...), nil
}

// appendFDs appends an FDS payload: the count, then each name with its
// length in front. The names must be valid and distinct.
func appendFDs(b []byte, names []string) ([]byte, error) {
	if len(names) == 0 || len(names) > MaxBatch {
		return nil, protocolErrorf("FDS with %d names (1 to %d)", len(names), MaxBatch)
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(names)))
	seen := make(map[string]bool, len(names))
	for _, name := range names {
		if err := ValidateName(name); err != nil {
			return nil, invalidName(err)
		}
		if seen[name] {
			return nil, protocolErrorf("duplicate fd name %q", name)
		}
		seen[name] = true
		b = append(b, uint8(len(name)))
		b = append(b, name...)
	}
	return b, nil
}

// appendDone appends a DONE payload: the count of fds in the transfer.
func appendDone(b []byte, count uint32) ([]byte, error) {
	if count > MaxFiles {
		return nil, protocolErrorf("DONE count %d (at most %d)", count, MaxFiles)
	}
	return binary.LittleEndian.AppendUint32(b, count), nil
}

// appendAck appends an ACK payload: ok, or an error with a text and
// perhaps the name of the fd at fault.
func appendAck(b []byte, ok bool, fd, text string) ([]byte, error) {
	if ok {
		if fd != "" || text != "" {
			return nil, protocolErrorf("ACK ok with an fd name or text")
		}
		return append(b, ackOK, 0, 0, 0), nil
	}
	if fd != "" {
		if err := ValidateName(fd); err != nil {
			return nil, invalidName(err)
		}
	}
	if err := validateText("ACK error text", text); err != nil {
		return nil, err
	}
	b = append(b, ackError, uint8(len(fd)))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(text)))
	b = append(b, fd...)
	return append(b, text...), nil
}

// appendError appends an ERROR payload: its text.
func appendError(b []byte, text string) ([]byte, error) {
	if err := validateText("ERROR text", text); err != nil {
		return nil, err
	}
	return append(b, text...), nil
}
