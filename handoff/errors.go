package handoff

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/luoinit/luoinit/wellknown"
)

// Error is what the operations of a Conn, a Listener and the helpers
// return on failure (ReadAck returns a bare *AckError when the peer reports
// one). It names the step, the workload and the fd where known, and wraps
// the cause: a syscall error, ErrProtocol, ErrVersion, a *PeerError, an
// *AckError, io.ErrUnexpectedEOF for a peer that closed, or
// os.ErrDeadlineExceeded for a timeout.
type Error struct {
	// Step is what was being done, with the peer, e.g. `waiting for ACK
	// from workload "kv"` or `workload "kv": sending FDS to luoinit`.
	Step     string
	Workload string // the workload of the connection, when known
	FD       string // the fd at fault, when known
	Err      error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("handoff: ")
	b.WriteString(e.Step)
	if e.FD != "" {
		fmt.Fprintf(&b, ", fd %q", e.FD)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// AckError is what ReadAck returns when the peer reported a failure.
type AckError struct {
	FD      string // the fd the peer failed on; "" if not one fd in particular
	Message string
}

func (e *AckError) Error() string {
	if e.FD != "" {
		return fmt.Sprintf("peer rejected fd %q: %s", e.FD, e.Message)
	}
	return "peer rejected the transfer: " + e.Message
}

// PeerError is the text of an ERROR message the peer sent, wrapped in the
// *Error of the step that received it.
type PeerError struct {
	Message string
}

func (e *PeerError) Error() string { return "peer sent ERROR: " + e.Message }

// ErrNoHandoff is wrapped by the error of Receive when neither wellknown.EnvHandoffFD nor
// EnvHandoffSocket is set: the process was not started for a handoff.
var ErrNoHandoff = errors.New("no handoff: neither " + wellknown.EnvHandoffFD + " nor " + wellknown.EnvHandoffSocket + " is set")

// timeoutError is a deadline that passed, with the time that was allowed.
type timeoutError struct{ d time.Duration }

func (e *timeoutError) Error() string {
	if e.d <= 0 {
		return "timeout"
	}
	return "timeout after " + e.d.String()
}

func (e *timeoutError) Unwrap() error { return os.ErrDeadlineExceeded }

// errClosedByPeer is the cause when the peer closed the connection where a
// message was expected.
var errClosedByPeer = fmt.Errorf("connection closed by peer: %w", io.ErrUnexpectedEOF)

// FDOf returns the name of the fd at fault in err, or "": the FD of an
// *Error or an *AckError in its chain.
func FDOf(err error) string {
	var ae *AckError
	if errors.As(err, &ae) && ae.FD != "" {
		return ae.FD
	}
	var he *Error
	for e := err; errors.As(e, &he); e = he.Err {
		if he.FD != "" {
			return he.FD
		}
	}
	return ""
}
