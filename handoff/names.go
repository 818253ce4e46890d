package handoff

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/luoinit/luoinit/wellknown"
)

// The one rule for the names of workloads and fds. The manifest checks it
// when it reads a config, so that a name it accepts is one the wire, the
// LUO session and LISTEN_FDNAMES also take; the wire checks it on every
// message. It lives here because the wire is the strictest consumer.

// ErrInvalidName is wrapped by the errors of ValidateName and
// ValidateWorkload.
var ErrInvalidName = errors.New("invalid name")

// nameError is a name that breaks the rule: what it names, the name (cut
// for the message) and why.
type nameError struct {
	what, name, why string
}

func (e *nameError) Error() string {
	return fmt.Sprintf("%s %s %s", e.what, quoteShort(e.name), e.why)
}

func (e *nameError) Unwrap() error { return ErrInvalidName }

// ValidateName reports whether name can name an fd: 1 to MaxNameLen bytes
// of valid UTF-8, no control character, no '/' (names may become file
// names), no ':' (the separator of LISTEN_FDNAMES), and neither "." nor
// "..".
func ValidateName(name string) error {
	const what = "fd name"
	switch {
	case name == "":
		return &nameError{what, name, "is empty"}
	case len(name) > MaxNameLen:
		return &nameError{what, name, fmt.Sprintf("is %d bytes long (at most %d)", len(name), MaxNameLen)}
	case !utf8.ValidString(name):
		return &nameError{what, name, "is not valid UTF-8"}
	case name == "." || name == "..":
		return &nameError{what, name, "is not allowed"}
	}
	if strings.IndexByte(name, 0) >= 0 {
		return &nameError{what, name, "contains a NUL byte"}
	}
	if i := strings.IndexFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
		return &nameError{what, name, fmt.Sprintf("contains the control character %U", rune(name[i]))}
	}
	for _, c := range []byte{'/', ':'} {
		if strings.IndexByte(name, c) >= 0 {
			return &nameError{what, name, fmt.Sprintf("contains '%c'", c)}
		}
	}
	return nil
}

// ValidateWorkload reports whether name can name a workload: 1 to
// MaxWorkloadLen bytes of ASCII letters, digits, '.', '_' and '-', and
// neither "." nor "..". The limit makes its session name
// (wellknown.SessionPrefix + name) fit in LUO's 63 bytes.
func ValidateWorkload(name string) error {
	const what = "workload name"
	switch {
	case name == "":
		return &nameError{what, name, "is empty"}
	case len(name) > MaxWorkloadLen:
		return &nameError{what, name, fmt.Sprintf("is %d bytes long (at most %d, so that its session name %s<name> fits in 63)", len(name), MaxWorkloadLen, wellknown.SessionPrefix)}
	case name == "." || name == "..":
		return &nameError{what, name, "is not allowed"}
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			what := fmt.Sprintf("%q", c)
			if c == 0 {
				what = "a NUL byte"
			}
			return &nameError{"workload name", name, "contains " + what + ": only ASCII letters, digits, '.', '_' and '-' are allowed"}
		}
	}
	return nil
}

// invalidName wraps a name error as a protocol violation, for the wire.
func invalidName(err error) error {
	return fmt.Errorf("%w: %w", ErrProtocol, err)
}
