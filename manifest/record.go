package manifest

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/BurntSushi/toml"
)

// The freeze record carries the two timestamps taken during the freeze
// (first workload stopped, reboot call). They come after the next
// manifest was sealed and the next kernel loaded with kexec_file_load,
// so they travel separately: prepare preserves a RecordSize-byte memfd in
// luoinit's own session (package carry) while preparing, and writes the
// record into its pages in place during the freeze (the kernel froze the
// memfd's size at PRESERVE_FD, not its contents). The restore side
// retrieves it and applies it to the manifest's Timing.
const RecordSize = 4096

// Record is the content of the freeze record: TOML, NUL-padded to
// RecordSize.
type Record struct {
	Version      int   `toml:"version"`
	FirstStopped Stamp `toml:"first_stopped"`
	Reboot       Stamp `toml:"reboot"`
}

// MarshalRecord encodes r (Version set to this build's) for the record
// memfd.
func MarshalRecord(r Record) ([]byte, error) {
	r.Version = Version
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(r); err != nil {
		return nil, fmt.Errorf("freeze record: %w", err)
	}
	if buf.Len() > RecordSize {
		return nil, fmt.Errorf("freeze record: %d bytes, more than the %d the memfd holds", buf.Len(), RecordSize)
	}
	return buf.Bytes(), nil
}

// ParseRecord decodes the content of a record memfd (trailing NULs
// ignored). It refuses unknown keys and a newer version.
func ParseRecord(b []byte) (Record, error) {
	var r Record
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return r, errors.New("freeze record: empty (the freeze never wrote it)")
	}
	md, err := toml.Decode(string(b), &r)
	if err != nil {
		return r, fmt.Errorf("freeze record: %w", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return r, fmt.Errorf("freeze record: unknown key %q", und[0].String())
	}
	switch {
	case r.Version < 1:
		return r, fmt.Errorf("freeze record: version %d", r.Version)
	case r.Version > Version:
		return r, fmt.Errorf("freeze record: written by a newer luoinit: version %d, this build understands %d", r.Version, Version)
	}
	return r, nil
}

// ApplyRecord puts the record's timestamps into the manifest's Timing.
func (m *Manifest) ApplyRecord(r Record) {
	m.Timing.FirstStopped = r.FirstStopped
	m.Timing.Reboot = r.Reboot
}
