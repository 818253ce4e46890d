package handoff

import (
	"encoding/binary"
	"fmt"
)

// decodeMessage parses one whole message (header and payload, exactly as
// one recvmsg returned it) and checks every limit of the protocol. It
// accepts only the canonical encoding: encodeMessage of the result gives b
// back.
func decodeMessage(b []byte) (message, error) {
	typ, p, err := decodeHeader(b)
	if err != nil {
		return message{}, err
	}
	m := message{typ: typ}
	switch typ {
	case typeHello:
		m.hello, err = decodeHello(p)
	case typeFDs:
		m.names, err = decodeFDs(p)
	case typeDone:
		m.count, err = decodeDone(p)
	case typeAck:
		m.ok, m.fd, m.text, err = decodeAck(p)
	case typeError:
		m.text, err = decodeError(p)
	default:
		err = protocolErrorf("unknown message type %d", uint16(typ))
	}
	if err != nil {
		return message{}, err
	}
	return m, nil
}

// decodeHeader checks the 12-byte header of b (magic, version, length)
// and returns the message type and the payload.
func decodeHeader(b []byte) (msgType, []byte, error) {
	if len(b) < HeaderSize {
		return 0, nil, protocolErrorf("message of %d bytes is shorter than the %d-byte header", len(b), HeaderSize)
	}
	if magic := binary.LittleEndian.Uint32(b[0:4]); magic != Magic {
		return 0, nil, protocolErrorf("bad magic 0x%08x (want 0x%08x, \"LUOH\"): not a luoinit handoff message", magic, Magic)
	}
	version := binary.LittleEndian.Uint16(b[4:6])
	switch {
	case version > ProtocolVersion:
		return 0, nil, fmt.Errorf("%w: peer speaks version %d, this side speaks version %d", ErrVersion, version, ProtocolVersion)
	case version != ProtocolVersion:
		return 0, nil, protocolErrorf("header version %d", version)
	}
	typ := msgType(binary.LittleEndian.Uint16(b[6:8]))
	length := binary.LittleEndian.Uint32(b[8:12])
	if length > MaxPayload {
		return 0, nil, protocolErrorf("%v header says %d payload bytes (at most %d)", typ, length, MaxPayload)
	}
	p := b[HeaderSize:]
	if int(length) != len(p) {
		return 0, nil, protocolErrorf("%v header says %d payload bytes, the message has %d", typ, length, len(p))
	}
	return typ, p, nil
}

// decodeHello parses a HELLO payload: version, direction, workload name.
// decodeHeader has checked that the header's version is ProtocolVersion.
func decodeHello(p []byte) (Hello, error) {
	if len(p) < 4 {
		return Hello{}, protocolErrorf("HELLO payload of %d bytes (at least 4)", len(p))
	}
	if v := binary.LittleEndian.Uint16(p[0:2]); v != ProtocolVersion {
		return Hello{}, protocolErrorf("HELLO version %d differs from header version %d", v, ProtocolVersion)
	}
	d := Direction(p[2])
	if d != DirectionPush && d != DirectionPull {
		return Hello{}, protocolErrorf("HELLO direction %d (1 push, 2 pull)", p[2])
	}
	n := int(p[3])
	if len(p) != 4+n {
		return Hello{}, protocolErrorf("HELLO payload of %d bytes for a %d-byte workload name (want %d)", len(p), n, 4+n)
	}
	w := string(p[4:])
	if err := ValidateWorkload(w); err != nil {
		return Hello{}, invalidName(err)
	}
	return Hello{Version: ProtocolVersion, Direction: d, Workload: w}, nil
}

// decodeFDs parses an FDS payload: a count, then each name with its
// length in front. The names are valid and distinct.
func decodeFDs(p []byte) ([]string, error) {
	if len(p) < 2 {
		return nil, protocolErrorf("FDS payload of %d bytes (at least 2)", len(p))
	}
	count := int(binary.LittleEndian.Uint16(p[0:2]))
	if count == 0 || count > MaxBatch {
		return nil, protocolErrorf("FDS with %d names (1 to %d)", count, MaxBatch)
	}
	names := make([]string, 0, count)
	seen := make(map[string]bool, count)
	off := 2
	for i := 0; i < count; i++ {
		if off >= len(p) {
			return nil, protocolErrorf("FDS payload ends before name %d of %d", i+1, count)
		}
		n := int(p[off])
		off++
		if off+n > len(p) {
			return nil, protocolErrorf("FDS name %d of %d: %d bytes at offset %d run past the payload (%d bytes)", i+1, count, n, off, len(p))
		}
		name := string(p[off : off+n])
		off += n
		if err := ValidateName(name); err != nil {
			return nil, fmt.Errorf("%w: FDS name %d of %d: %w", ErrProtocol, i+1, count, err)
		}
		if seen[name] {
			return nil, protocolErrorf("duplicate fd name %q in FDS", name)
		}
		seen[name] = true
		names = append(names, name)
	}
	if off != len(p) {
		return nil, protocolErrorf("FDS payload has %d bytes after its %d names", len(p)-off, count)
	}
	return names, nil
}

// decodeDone parses a DONE payload: the count of fds in the transfer.
func decodeDone(p []byte) (uint32, error) {
	if len(p) != 4 {
		return 0, protocolErrorf("DONE payload of %d bytes (want 4)", len(p))
	}
	count := binary.LittleEndian.Uint32(p)
	if count > MaxFiles {
		return 0, protocolErrorf("DONE count %d (at most %d)", count, MaxFiles)
	}
	return count, nil
}

// decodeAck parses an ACK payload: ok, or an error with a text and
// perhaps the name of the fd at fault.
func decodeAck(p []byte) (ok bool, fd, text string, err error) {
	if len(p) < 4 {
		return false, "", "", protocolErrorf("ACK payload of %d bytes (at least 4)", len(p))
	}
	status, nameLen, textLen := p[0], int(p[1]), int(binary.LittleEndian.Uint16(p[2:4]))
	if len(p) != 4+nameLen+textLen {
		return false, "", "", protocolErrorf("ACK payload of %d bytes for a %d-byte fd name and %d-byte text (want %d)", len(p), nameLen, textLen, 4+nameLen+textLen)
	}
	switch status {
	case ackOK:
		if nameLen != 0 || textLen != 0 {
			return false, "", "", protocolErrorf("ACK ok with an fd name or text")
		}
		return true, "", "", nil
	case ackError:
		fd, text = string(p[4:4+nameLen]), string(p[4+nameLen:])
		if fd != "" {
			if err := ValidateName(fd); err != nil {
				return false, "", "", fmt.Errorf("%w: ACK: %w", ErrProtocol, err)
			}
		}
		if err := validateText("ACK error text", text); err != nil {
			return false, "", "", err
		}
		return false, fd, text, nil
	}
	return false, "", "", protocolErrorf("ACK status %d (0 ok, 1 error)", status)
}

// decodeError parses an ERROR payload: its text.
func decodeError(p []byte) (string, error) {
	text := string(p)
	if err := validateText("ERROR text", text); err != nil {
		return "", err
	}
	return text, nil
}
