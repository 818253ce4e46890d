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
	if len(b) < HeaderSize {
		return message{}, protocolErrorf("message of %d bytes is shorter than the %d-byte header", len(b), HeaderSize)
	}
	if magic := binary.LittleEndian.Uint32(b[0:4]); magic != Magic {
		return message{}, protocolErrorf("bad magic 0x%08x (want 0x%08x, \"LUOH\"): not a luoinit handoff message", magic, Magic)
	}
	version := binary.LittleEndian.Uint16(b[4:6])
	switch {
	case version > ProtocolVersion:
		return message{}, fmt.Errorf("%w: peer speaks version %d, this side speaks version %d", ErrVersion, version, ProtocolVersion)
	case version != ProtocolVersion:
		return message{}, protocolErrorf("header version %d", version)
	}
	typ := msgType(binary.LittleEndian.Uint16(b[6:8]))
	length := binary.LittleEndian.Uint32(b[8:12])
	if length > MaxPayload {
		return message{}, protocolErrorf("%v header says %d payload bytes (at most %d)", typ, length, MaxPayload)
	}
	p := b[HeaderSize:]
	if int(length) != len(p) {
		return message{}, protocolErrorf("%v header says %d payload bytes, the message has %d", typ, length, len(p))
	}

	m := message{typ: typ}
	switch typ {
	case typeHello:
		if len(p) < 4 {
			return message{}, protocolErrorf("HELLO payload of %d bytes (at least 4)", len(p))
		}
		if v := binary.LittleEndian.Uint16(p[0:2]); v != version {
			return message{}, protocolErrorf("HELLO version %d differs from header version %d", v, version)
		}
		d := Direction(p[2])
		if d != DirectionPush && d != DirectionPull {
			return message{}, protocolErrorf("HELLO direction %d (1 push, 2 pull)", p[2])
		}
		n := int(p[3])
		if len(p) != 4+n {
			return message{}, protocolErrorf("HELLO payload of %d bytes for a %d-byte workload name (want %d)", len(p), n, 4+n)
		}
		w := string(p[4:])
		if err := ValidateWorkload(w); err != nil {
			return message{}, invalidName(err)
		}
		m.hello = Hello{Version: int(version), Direction: d, Workload: w}

	case typeFDs:
		if len(p) < 2 {
			return message{}, protocolErrorf("FDS payload of %d bytes (at least 2)", len(p))
		}
		count := int(binary.LittleEndian.Uint16(p[0:2]))
		if count == 0 || count > MaxBatch {
			return message{}, protocolErrorf("FDS with %d names (1 to %d)", count, MaxBatch)
		}
		m.names = make([]string, 0, count)
		seen := make(map[string]bool, count)
		off := 2
		for i := 0; i < count; i++ {
			if off >= len(p) {
				return message{}, protocolErrorf("FDS payload ends before name %d of %d", i+1, count)
			}
			n := int(p[off])
			off++
			if off+n > len(p) {
				return message{}, protocolErrorf("FDS name %d of %d: %d bytes at offset %d run past the payload (%d bytes)", i+1, count, n, off, len(p))
			}
			name := string(p[off : off+n])
			off += n
			if err := ValidateName(name); err != nil {
				return message{}, fmt.Errorf("%w: FDS name %d of %d: %w", ErrProtocol, i+1, count, err)
			}
			if seen[name] {
				return message{}, protocolErrorf("duplicate fd name %q in FDS", name)
			}
			seen[name] = true
			m.names = append(m.names, name)
		}
		if off != len(p) {
			return message{}, protocolErrorf("FDS payload has %d bytes after its %d names", len(p)-off, count)
		}

	case typeDone:
		if len(p) != 4 {
			return message{}, protocolErrorf("DONE payload of %d bytes (want 4)", len(p))
		}
		m.count = binary.LittleEndian.Uint32(p)
		if m.count > MaxFiles {
			return message{}, protocolErrorf("DONE count %d (at most %d)", m.count, MaxFiles)
		}

	case typeAck:
		if len(p) < 4 {
			return message{}, protocolErrorf("ACK payload of %d bytes (at least 4)", len(p))
		}
		status, nameLen, textLen := p[0], int(p[1]), int(binary.LittleEndian.Uint16(p[2:4]))
		if len(p) != 4+nameLen+textLen {
			return message{}, protocolErrorf("ACK payload of %d bytes for a %d-byte fd name and %d-byte text (want %d)", len(p), nameLen, textLen, 4+nameLen+textLen)
		}
		switch status {
		case ackOK:
			if nameLen != 0 || textLen != 0 {
				return message{}, protocolErrorf("ACK ok with an fd name or text")
			}
			m.ok = true
		case ackError:
			m.fd = string(p[4 : 4+nameLen])
			m.text = string(p[4+nameLen:])
			if m.fd != "" {
				if err := ValidateName(m.fd); err != nil {
					return message{}, fmt.Errorf("%w: ACK: %w", ErrProtocol, err)
				}
			}
			if err := validateText("ACK error text", m.text); err != nil {
				return message{}, err
			}
		default:
			return message{}, protocolErrorf("ACK status %d (0 ok, 1 error)", status)
		}

	case typeError:
		m.text = string(p)
		if err := validateText("ERROR text", m.text); err != nil {
			return message{}, err
		}

	default:
		return message{}, protocolErrorf("unknown message type %d", uint16(typ))
	}
	return m, nil
}
