// Package notify is systemd's service notification protocol, served by
// luoinit as PID 1: each workload finds an AF_UNIX datagram socket in
// $NOTIFY_SOCKET, sends sd_notify(3) datagrams on it (READY=1, STATUS=,
// FDSTORE=1 with fds attached, ...), and after a restart or a live update
// gets its fd store back as sd_listen_fds(3) passes fds: LISTEN_FDS,
// LISTEN_PID, LISTEN_FDNAMES, fds from 3.
//
//	reg := notify.NewRegistry(wellknown.NotifyDir, log.Printf)
//	sock, err := reg.Open(spec)            // before the workload starts
//	env = append(env, sock.Env()...)       // NOTIFY_SOCKET=/run/luoinit/notify/<name>
//	sock.Started(pid)                      // datagrams are judged from now on
//	<-sock.Ready()                         // READY=1 came
//	files := reg.FDStore(spec.Name)        // dups of the stored fds, for prepare
//
// No libsystemd is involved: a workload may use it or write the datagrams
// itself (docs/unmodified-software.md).
package notify

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxDatagram is the largest datagram accepted, in bytes, as systemd's
// NOTIFY_BUFFER_MAX: a longer one is dropped whole.
const MaxDatagram = 4096

// MaxFDName is the longest FDNAME= accepted, in bytes (systemd's
// FDNAME_MAX).
const MaxFDName = 255

// DefaultFDName is the name of an fd stored without FDNAME=, as systemd
// names it.
const DefaultFDName = "stored"

// ErrMalformed is wrapped by Parse's error for a datagram that is dropped
// whole.
var ErrMalformed = errors.New("malformed notification datagram")

// Message is what one datagram asks, as systemd reads it: each known
// assignment is looked up in the datagram's newline-separated list; the
// first of a key counts; unknown assignments are ignored.
type Message struct {
	Ready    bool // READY=1
	Stopping bool // STOPPING=1 (wins over READY=1 in the same datagram)

	Status    string // STATUS=..., if StatusSet; "" clears the status
	StatusSet bool

	MainPID int // MAINPID=, 0 if absent or invalid

	FDStore       bool   // FDSTORE=1: keep the attached fds
	FDStoreRemove bool   // FDSTOREREMOVE=1: drop the stored fds named FDName (wins over FDSTORE=1)
	FDName        string // FDNAME=, if FDNameSet and valid
	FDNameSet     bool
	FDPoll        bool // false with FDPOLL=0; luoinit never polls stored fds either way

	// Ignored lists assignments that were understood but whose value was
	// refused (MAINPID=abc, an FDNAME= with ':', a STATUS= that is not
	// UTF-8), for the log; the rest of the datagram still counts.
	Ignored []string
}

// Parse reads one datagram. It refuses, with an error wrapping
// ErrMalformed, a datagram longer than MaxDatagram or with a NUL byte
// before its last byte (one trailing NUL is allowed, as systemd allows
// it). Assignments are separated by '\n' or '\r'; empty ones and ones
// without '=' are skipped.
func Parse(b []byte) (Message, error) {
	m := Message{FDPoll: true}
	if len(b) > MaxDatagram {
		return m, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(b), MaxDatagram)
	}
	if n := len(b); n > 0 && b[n-1] == 0 {
		b = b[:n-1]
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return m, fmt.Errorf("%w: NUL byte at offset %d", ErrMalformed, i)
	}
	seen := map[string]bool{}
	first := func(key string) bool {
		if seen[key] {
			return false
		}
		seen[key] = true
		return true
	}
	for _, tag := range strings.FieldsFunc(string(b), func(r rune) bool { return r == '\n' || r == '\r' }) {
		key, value, ok := strings.Cut(tag, "=")
		if !ok {
			continue
		}
		switch key {
		case "READY":
			m.Ready = m.Ready || value == "1"
		case "STOPPING":
			m.Stopping = m.Stopping || value == "1"
		case "FDSTORE":
			m.FDStore = m.FDStore || value == "1"
		case "FDSTOREREMOVE":
			m.FDStoreRemove = m.FDStoreRemove || value == "1"
		case "FDPOLL":
			m.FDPoll = m.FDPoll && value != "0"
		case "STATUS":
			if !first(key) {
				break
			}
			if !utf8.ValidString(value) {
				m.Ignored = append(m.Ignored, "STATUS= is not UTF-8")
				break
			}
			m.Status, m.StatusSet = value, true
		case "MAINPID":
			if !first(key) {
				break
			}
			pid, err := strconv.Atoi(value)
			if err != nil || pid <= 0 {
				m.Ignored = append(m.Ignored, fmt.Sprintf("MAINPID=%s is not a pid", quoteShort(value)))
				break
			}
			m.MainPID = pid
		case "FDNAME":
			if !first(key) {
				break
			}
			if err := ValidFDName(value); err != nil {
				m.Ignored = append(m.Ignored, err.Error())
				break
			}
			m.FDName, m.FDNameSet = value, true
		}
	}
	if m.Stopping {
		m.Ready = false
	}
	if m.FDStoreRemove {
		m.FDStore = false
	}
	return m, nil
}

// ValidFDName reports whether name can be an FDNAME=: at most MaxFDName
// bytes of printable ASCII other than ':' (the separator of
// LISTEN_FDNAMES). The empty name is valid, as in systemd.
func ValidFDName(name string) error {
	if len(name) > MaxFDName {
		return fmt.Errorf("FDNAME= is %d bytes long, at most %d", len(name), MaxFDName)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < ' ' || c > '~' || c == ':' {
			return fmt.Errorf("FDNAME=%s has byte %#02x at offset %d: only printable ASCII other than ':' is allowed", quoteShort(name), c, i)
		}
	}
	return nil
}

// quoteShort quotes s for a log line, cut to 64 bytes.
func quoteShort(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "..."
	}
	return strconv.Quote(s)
}
