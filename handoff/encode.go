package handoff

import (
	"encoding/binary"
	"fmt"
)

// encodeMessage returns the wire form of m: header and payload. It checks
// m against the same rules as decodeMessage, so that it never produces a
// message a peer would reject.
func encodeMessage(m *message) ([]byte, error) {
	b := make([]byte, HeaderSize, HeaderSize+64)
	binary.LittleEndian.PutUint32(b[0:4], Magic)
	binary.LittleEndian.PutUint16(b[4:6], ProtocolVersion)
	binary.LittleEndian.PutUint16(b[6:8], uint16(m.typ))

	switch m.typ {
	case typeHello:
		h := m.hello
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
		b = append(b, h.Workload...)

	case typeFDs:
		if len(m.names) == 0 || len(m.names) > MaxBatch {
			return nil, protocolErrorf("FDS with %d names (1 to %d)", len(m.names), MaxBatch)
		}
		b = binary.LittleEndian.AppendUint16(b, uint16(len(m.names)))
		seen := make(map[string]bool, len(m.names))
		for _, name := range m.names {
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

	case typeDone:
		if m.count > MaxFiles {
			return nil, protocolErrorf("DONE count %d (at most %d)", m.count, MaxFiles)
		}
		b = binary.LittleEndian.AppendUint32(b, m.count)

	case typeAck:
		if m.ok {
			if m.fd != "" || m.text != "" {
				return nil, protocolErrorf("ACK ok with an fd name or text")
			}
			b = append(b, ackOK, 0, 0, 0)
			break
		}
		if m.fd != "" {
			if err := ValidateName(m.fd); err != nil {
				return nil, invalidName(err)
			}
		}
		if err := validateText("ACK error text", m.text); err != nil {
			return nil, err
		}
		b = append(b, ackError, uint8(len(m.fd)))
		b = binary.LittleEndian.AppendUint16(b, uint16(len(m.text)))
		b = append(b, m.fd...)
		b = append(b, m.text...)

	case typeError:
		if err := validateText("ERROR text", m.text); err != nil {
			return nil, err
		}
		b = append(b, m.text...)

	default:
		return nil, protocolErrorf("unknown message %v", m.typ)
	}

	if len(b)-HeaderSize > MaxPayload {
		return nil, protocolErrorf("%v payload of %d bytes (at most %d)", m.typ, len(b)-HeaderSize, MaxPayload)
	}
	binary.LittleEndian.PutUint32(b[8:12], uint32(len(b)-HeaderSize))
	return b, nil
}
