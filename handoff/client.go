package handoff

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/luoinit/luoinit/wellknown"
	"golang.org/x/sys/unix"
)

// Push gives files to luoinit before a kexec: it connects to socketPath,
// says HELLO (push) as workload, sends the files and waits for the ACK.
// The whole exchange must be done within timeout (0: no limit). The files
// stay open. A refusal by luoinit is an *Error wrapping an *AckError (which
// names the fd) or a *PeerError.
func Push(socketPath, workload string, files []File, timeout time.Duration) error {
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	c, err := dial(socketPath, deadline, timeout, workload)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.setDeadline(deadline, timeout); err != nil {
		return err
	}
	err = c.SendHello(Hello{Version: ProtocolVersion, Direction: DirectionPush, Workload: workload})
	if err == nil {
		err = c.SendFiles(files)
	}
	if err != nil {
		// luoinit may have answered and closed before all was sent: its
		// answer says more than the broken pipe.
		if errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ECONNRESET) {
			if aerr := c.ReadAck(); isAnswer(aerr) {
				return refused(c, aerr)
			}
		}
		return err
	}
	if err := c.ReadAck(); err != nil {
		return refused(c, err)
	}
	return nil
}

// isAnswer reports whether err is a refusal the peer sent.
func isAnswer(err error) bool {
	var ae *AckError
	var pe *PeerError
	return errors.As(err, &ae) || errors.As(err, &pe)
}

// refused wraps a bare *AckError in an *Error that names the workload.
func refused(c *Conn, err error) error {
	if ae, ok := err.(*AckError); ok {
		return &Error{Step: c.step("pushing fds", "to"), Workload: c.workload, Err: ae}
	}
	return err
}

// Receive pulls the files luoinit kept for workload after a kexec, over
// the socket wellknown.EnvHandoffFD or wellknown.EnvHandoffSocket names: HELLO (pull), the files, ACK. It
// must be done within timeout (0: no limit). The inherited socket of wellknown.EnvHandoffFD
// is closed and wellknown.EnvHandoffFD unset, so that no child inherits a stale number. If
// receiving fails, Receive tells luoinit why (ACK error) before it returns;
// luoinit then still holds the files. Without either variable the error
// wraps ErrNoHandoff.
func Receive(workload string, timeout time.Duration) ([]File, error) {
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	c, err := connFromEnv(deadline, timeout, workload)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.setDeadline(deadline, timeout); err != nil {
		return nil, err
	}
	if err := c.SendHello(Hello{Version: ProtocolVersion, Direction: DirectionPull, Workload: workload}); err != nil {
		return nil, err
	}
	files, err := c.ReceiveFiles()
	if err != nil {
		// Answer unless luoinit is gone or has said why it stopped (an
		// ERROR it sent, or one this side sent for a newer version).
		var pe *PeerError
		if !errors.As(err, &pe) && !errors.Is(err, ErrVersion) &&
			!errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, errClosedByPeer) {
			c.SendAck(FDOf(err), err)
		}
		return nil, err
	}
	if err := c.SendAck("", nil); err != nil {
		closeFiles(files)
		return nil, err
	}
	return files, nil
}

// connFromEnv connects as wellknown.EnvHandoffFD or wellknown.EnvHandoffSocket says.
func connFromEnv(deadline time.Time, timeout time.Duration, workload string) (*Conn, error) {
	if v, ok := os.LookupEnv(wellknown.EnvHandoffFD); ok && v != "" {
		step := fmt.Sprintf("workload %q: using %s=%s", workload, wellknown.EnvHandoffFD, v)
		fd, err := strconv.Atoi(v)
		if err != nil || fd < 0 {
			return nil, &Error{Step: step, Workload: workload, Err: fmt.Errorf("not an fd number")}
		}
		// Check the fd before an *os.File owns it: closing a wrong one
		// (stdin, say) would do harm.
		if err := checkSocket(fd); err != nil {
			return nil, &Error{Step: step, Workload: workload, Err: err}
		}
		f := os.NewFile(uintptr(fd), wellknown.EnvHandoffFD)
		c, err := NewConn(f)
		f.Close()
		os.Unsetenv(wellknown.EnvHandoffFD)
		if err != nil {
			var he *Error
			if errors.As(err, &he) {
				err = he.Err
			}
			return nil, &Error{Step: step, Workload: workload, Err: err}
		}
		return c, nil
	}
	if p := os.Getenv(wellknown.EnvHandoffSocket); p != "" {
		return dial(p, deadline, timeout, workload)
	}
	return nil, &Error{Step: fmt.Sprintf("workload %q: finding the handoff socket", workload), Workload: workload, Err: ErrNoHandoff}
}
