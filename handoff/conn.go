package handoff

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"syscall"
	"time"

	"github.com/luoinit/luoinit/unixsock"
	"golang.org/x/sys/unix"
)

// File is one fd with its name, as it travels in a transfer.
type File struct {
	Name string
	File *os.File
}

// Hello is the first message of a connection: the workload says who it is
// and which way the fds go.
type Hello struct {
	Version   int // ProtocolVersion; 0 in SendHello means ProtocolVersion
	Direction Direction
	Workload  string
}

// Cred is the identity of the process at the other end of a connection, as
// the kernel recorded it when the connection was made (SO_PEERCRED).
type Cred struct {
	PID      int
	UID, GID uint32
}

// role is which end of the exchange a Conn is, known once HELLO has been
// sent or read; it only shapes error messages.
type role uint8

const (
	roleUnknown role = iota
	roleWorkload
	roleInit
)

// Conn is one end of a handoff connection over a SOCK_SEQPACKET unix
// socket. Its methods are not safe for concurrent use, except Close.
type Conn struct {
	uc       *net.UnixConn
	rc       syscall.RawConn
	fd       int // for error messages
	workload string
	role     role
	timeout  time.Duration // the time the current deadline allowed
	buf      []byte
	oob      []byte
	sender   *Cred // SCM_CREDENTIALS of the last message, with PassCred
}

func newConn(uc *net.UnixConn) (*Conn, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		uc.Close()
		return nil, err
	}
	c := &Conn{uc: uc, rc: rc, fd: -1}
	rc.Control(func(fd uintptr) { c.fd = int(fd) })
	return c, nil
}

// checkSocket reports whether fd is an AF_UNIX SOCK_SEQPACKET socket.
func checkSocket(fd int) error {
	domain, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		if errors.Is(err, unix.ENOTSOCK) {
			return fmt.Errorf("fd %d is not a socket: %w", fd, err)
		}
		return fmt.Errorf("getsockopt(fd %d, SO_DOMAIN): %w", fd, err)
	}
	if domain != unix.AF_UNIX {
		return fmt.Errorf("fd %d is a socket of family %d, not AF_UNIX", fd, domain)
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return fmt.Errorf("getsockopt(fd %d, SO_TYPE): %w", fd, err)
	}
	if typ != unix.SOCK_SEQPACKET {
		return fmt.Errorf("fd %d is a unix socket of type %d, not SOCK_SEQPACKET (%d)", fd, typ, unix.SOCK_SEQPACKET)
	}
	return nil
}

// NewConn wraps an existing connected AF_UNIX SOCK_SEQPACKET socket, such
// as one inherited from a parent. The Conn works on a duplicate of f (with
// close-on-exec); the caller still owns f and should close it. f's file
// description is put in non-blocking mode.
func NewConn(f *os.File) (*Conn, error) {
	step := "wrapping " + f.Name()
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, &Error{Step: step, Err: err}
	}
	var cerr error
	if err := rc.Control(func(fd uintptr) { cerr = checkSocket(int(fd)) }); err != nil {
		return nil, &Error{Step: step, Err: err}
	}
	if cerr != nil {
		return nil, &Error{Step: step, Err: cerr}
	}
	nc, err := net.FileConn(f)
	if err != nil {
		return nil, &Error{Step: step, Err: err}
	}
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		nc.Close()
		return nil, &Error{Step: step, Err: fmt.Errorf("not a unix socket (%T)", nc)}
	}
	c, err := newConn(uc)
	if err != nil {
		return nil, &Error{Step: step, Err: err}
	}
	return c, nil
}

// Dial connects to the SOCK_SEQPACKET unix socket at path.
func Dial(path string) (*Conn, error) {
	return dial(path, time.Time{}, 0, "")
}

func dial(path string, deadline time.Time, timeout time.Duration, workload string) (*Conn, error) {
	step := "connecting to " + path
	if workload != "" {
		step = fmt.Sprintf("workload %q: %s", workload, step)
	}
	d := net.Dialer{Deadline: deadline}
	nc, err := d.Dial("unixpacket", path)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) && !deadline.IsZero() {
			err = &timeoutError{d: timeout}
		}
		return nil, &Error{Step: step, Workload: workload, Err: err}
	}
	c, err := newConn(nc.(*net.UnixConn))
	if err != nil {
		return nil, &Error{Step: step, Workload: workload, Err: err}
	}
	return c, nil
}

// Socketpair makes a connected pair of SOCK_SEQPACKET unix sockets: a Conn
// to keep and an *os.File to give to a child (exec.Cmd.ExtraFiles and the
// like), which finds it through wellknown.EnvHandoffFD. Close the *os.File once the child
// has started. Both ends are close-on-exec: passing a file to a child
// clears the flag on the child's copy only, while a child started by some
// other goroutine in the meantime must not inherit this pair.
func Socketpair() (*Conn, *os.File, error) {
	const step = "making a socket pair"
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, &Error{Step: step, Err: fmt.Errorf("socketpair(AF_UNIX, SOCK_SEQPACKET): %w", err)}
	}
	keep := os.NewFile(uintptr(fds[0]), "handoff socket")
	nc, err := net.FileConn(keep)
	keep.Close()
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, &Error{Step: step, Err: err}
	}
	c, err := newConn(nc.(*net.UnixConn))
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, &Error{Step: step, Err: err}
	}
	return c, os.NewFile(uintptr(fds[1]), "handoff socket (child end)"), nil
}

// Workload is the workload name of the connection: the one sent with
// SendHello or read with ReadHello, "" before that.
func (c *Conn) Workload() string { return c.workload }

// Peer returns the pid, uid and gid of the process that made the other end
// of the connection (SO_PEERCRED). For a Socketpair that is this process.
func (c *Conn) Peer() (Cred, error) {
	uc, err := unixsock.PeerCred(c.rc)
	if err != nil {
		return Cred{}, c.fail(c.step("reading credentials", "of"), "", err)
	}
	return Cred{PID: int(uc.Pid), UID: uc.Uid, GID: uc.Gid}, nil
}

// PassCred turns on SO_PASSCRED: from then on the kernel attaches the
// sender's credentials to every message the peer sends, and Sender
// returns them. On a Socketpair, Peer names this process (the pair's
// creator), so this is how the init learns which process actually speaks
// on the end it gave a child. Turn it on before the peer sends anything.
func (c *Conn) PassCred() error {
	var serr error
	err := c.rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	})
	if err == nil && serr != nil {
		err = fmt.Errorf("setsockopt(fd %d, SO_PASSCRED, 1): %w", c.fd, serr)
	}
	if err != nil {
		return c.fail(c.step("enabling credentials", "for"), "", err)
	}
	return nil
}

// Sender returns the credentials the kernel attached to the last message
// received (see PassCred), or false if it carried none.
func (c *Conn) Sender() (Cred, bool) {
	if c.sender == nil {
		return Cred{}, false
	}
	return *c.sender, true
}

// SetDeadline sets the time by which every following send and receive
// must be done; the zero time means none. A call that passes the deadline
// fails with an *Error that wraps os.ErrDeadlineExceeded and says how long
// was allowed.
func (c *Conn) SetDeadline(t time.Time) error {
	var d time.Duration
	if !t.IsZero() {
		d = time.Until(t).Round(time.Millisecond)
	}
	return c.setDeadline(t, d)
}

func (c *Conn) setDeadline(t time.Time, d time.Duration) error {
	if err := c.uc.SetDeadline(t); err != nil {
		return c.fail(c.step("setting a deadline", "with"), "", err)
	}
	c.timeout = d
	return nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.uc.Close() }

// SendHello sends the first message of the connection. h.Version 0 means
// ProtocolVersion.
func (c *Conn) SendHello(h Hello) error {
	if h.Version == 0 {
		h.Version = ProtocolVersion
	}
	step := fmt.Sprintf("workload %q: sending HELLO (%v)", h.Workload, h.Direction)
	if err := c.send(&message{typ: typeHello, hello: h}, nil); err != nil {
		return &Error{Step: step, Workload: h.Workload, Err: c.cause(err)}
	}
	c.workload, c.role = h.Workload, roleWorkload
	return nil
}

// ReadHello reads the first message of the connection. An ERROR from the
// peer gives an *Error wrapping a *PeerError.
func (c *Conn) ReadHello() (Hello, error) {
	step := c.step("waiting for HELLO", "from")
	m, _, err := c.recv()
	if err == nil {
		switch m.typ {
		case typeHello:
		case typeError:
			err = &PeerError{Message: m.text}
		default:
			err = protocolErrorf("got %v, want HELLO", m.typ)
		}
	}
	if err != nil {
		c.answer(err)
		return Hello{}, c.fail(step, "", err)
	}
	c.workload, c.role = m.hello.Workload, roleInit
	return m.hello, nil
}

// SendFiles sends files in FDS messages of at most MaxBatch fds each, then
// DONE with their number. Names must be valid (ValidateName) and distinct.
// The files stay open; close them after the peer's ACK.
func (c *Conn) SendFiles(files []File) error {
	step := c.step("sending fds", "to")
	if len(files) > MaxFiles {
		return c.fail(step, "", protocolErrorf("%d fds in one transfer (at most %d)", len(files), MaxFiles))
	}
	names := make([]string, len(files))
	fds := make([]int, len(files))
	seen := make(map[string]bool, len(files))
	for i, f := range files {
		if err := ValidateName(f.Name); err != nil {
			return c.fail(step, "", invalidName(err))
		}
		if seen[f.Name] {
			return c.fail(step, f.Name, protocolErrorf("duplicate fd name"))
		}
		seen[f.Name] = true
		if f.File == nil {
			return c.fail(step, f.Name, errors.New("no *os.File"))
		}
		rc, err := f.File.SyscallConn()
		if err == nil {
			err = rc.Control(func(fd uintptr) { fds[i] = int(fd) })
		}
		if err != nil {
			return c.fail(step, f.Name, err)
		}
		names[i] = f.Name
	}
	for start := 0; start < len(files); start += MaxBatch {
		end := min(start+MaxBatch, len(files))
		if err := c.send(&message{typ: typeFDs, names: names[start:end]}, fds[start:end]); err != nil {
			batch := c.step(fmt.Sprintf("sending fds %d to %d of %d", start+1, end, len(files)), "to")
			return c.fail(batch, "", err)
		}
	}
	runtime.KeepAlive(files)
	if err := c.send(&message{typ: typeDone, count: uint32(len(files))}, nil); err != nil {
		return c.fail(c.step("sending DONE", "to"), "", err)
	}
	return nil
}

// ReceiveFiles receives FDS messages until DONE and returns the files, in
// the order sent, with close-on-exec set. It checks every limit, that each
// FDS message carries as many fds as names, that no name repeats and that
// DONE counts what arrived. On any error it closes every fd received; it
// does not answer the peer, so the caller sends SendAck(FDOf(err), err) if
// the connection still works. Zero files is a valid transfer.
func (c *Conn) ReceiveFiles() ([]File, error) {
	step := c.step("receiving fds", "from")
	files := []File{}
	seen := map[string]bool{}
	fail := func(fd string, err error) ([]File, error) {
		closeFiles(files)
		return nil, c.fail(step, fd, err)
	}
	for {
		m, fds, err := c.recv()
		if err != nil {
			return fail("", err)
		}
		switch m.typ {
		case typeFDs:
			if len(files)+len(m.names) > MaxFiles {
				closeFDs(fds)
				return fail("", protocolErrorf("more than %d fds in one transfer", MaxFiles))
			}
			for _, name := range m.names {
				if seen[name] {
					closeFDs(fds)
					return fail(name, protocolErrorf("fd name sent twice in one transfer"))
				}
			}
			for i, name := range m.names {
				seen[name] = true
				files = append(files, File{Name: name, File: os.NewFile(uintptr(fds[i]), name)})
			}
		case typeDone:
			if int(m.count) != len(files) {
				return fail("", protocolErrorf("DONE says %d fds were sent, %d arrived", m.count, len(files)))
			}
			return files, nil
		case typeError:
			return fail("", &PeerError{Message: m.text})
		default:
			return fail("", protocolErrorf("got %v, want FDS or DONE", m.typ))
		}
	}
}

// SendAck answers a transfer: ok if err is nil, otherwise an error naming
// fdName (may be "") with err's text (cut to MaxTextLen bytes). fdName is
// ignored when err is nil.
func (c *Conn) SendAck(fdName string, err error) error {
	m := &message{typ: typeAck, ok: err == nil}
	if err != nil {
		m.fd, m.text = fdName, cleanText(err.Error())
	}
	if serr := c.send(m, nil); serr != nil {
		return c.fail(c.step("sending ACK", "to"), "", serr)
	}
	return nil
}

// ReadAck waits for the peer's answer to a transfer: nil for ok, an
// *AckError if the peer reported a failure, or an *Error (an ERROR from
// the peer, a protocol violation, a timeout, a closed connection).
func (c *Conn) ReadAck() error {
	step := c.step("waiting for ACK", "from")
	m, _, err := c.recv()
	if err == nil {
		switch m.typ {
		case typeAck:
			if m.ok {
				return nil
			}
			return &AckError{FD: m.fd, Message: m.text}
		case typeError:
			err = &PeerError{Message: m.text}
		default:
			err = protocolErrorf("got %v, want ACK", m.typ)
		}
	}
	c.answer(err)
	return c.fail(step, "", err)
}

// answer tells the peer why a message outside a transfer (HELLO, ACK) was
// refused, as the protocol asks: ERROR with the reason, before the caller
// closes. A peer that sent ERROR, closed or timed out is not answered, nor
// is a newer version (recv answered it).
func (c *Conn) answer(err error) {
	if errors.Is(err, ErrProtocol) {
		c.send(&message{typ: typeError, text: cleanText(err.Error())}, nil)
	}
}

// SendError sends an ERROR message with msg (NUL bytes replaced, cut to
// MaxTextLen bytes). The sender should close the connection after it.
func (c *Conn) SendError(msg string) error {
	if err := c.send(&message{typ: typeError, text: cleanText(msg)}, nil); err != nil {
		return c.fail(c.step("sending ERROR", "to"), "", err)
	}
	return nil
}

// step names what is being done, with whom: the init's side names the
// workload, the workload's side names itself and luoinit.
func (c *Conn) step(action, prep string) string {
	switch c.role {
	case roleInit:
		return fmt.Sprintf("%s %s workload %q", action, prep, c.workload)
	case roleWorkload:
		return fmt.Sprintf("workload %q: %s %s luoinit", c.workload, action, prep)
	}
	return action + " " + prep + " peer"
}

// cause turns a passed deadline into a timeoutError that says how long
// was allowed.
func (c *Conn) cause(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		var te *timeoutError
		if !errors.As(err, &te) {
			return &timeoutError{d: c.timeout}
		}
	}
	return err
}

func (c *Conn) fail(step, fd string, err error) error {
	return &Error{Step: step, Workload: c.workload, FD: fd, Err: c.cause(err)}
}

// send encodes m and sends it with fds attached in one sendmsg.
func (c *Conn) send(m *message, fds []int) error {
	b, err := encodeMessage(m)
	if err != nil {
		return err
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	var n int
	var serr error
	err = c.rc.Write(func(fd uintptr) bool {
		for {
			n, serr = unix.SendmsgN(int(fd), b, oob, nil, unix.MSG_NOSIGNAL)
			if serr != unix.EINTR {
				return serr != unix.EAGAIN
			}
		}
	})
	if err != nil {
		return err
	}
	if serr != nil {
		err = fmt.Errorf("sendmsg(fd %d, %v, %d fds): %w", c.fd, m.typ, len(fds), serr)
		if serr == unix.EPIPE || serr == unix.ECONNRESET {
			err = fmt.Errorf("%w: the peer closed the connection", err)
		}
		return err
	}
	if n != len(b) {
		return fmt.Errorf("sendmsg(fd %d, %v, %d fds): sent %d of %d bytes", c.fd, m.typ, len(fds), n, len(b))
	}
	return nil
}

// recv receives and decodes one message. It returns the fds that came with
// an FDS message, as many as it has names; on every error it has closed
// all fds that arrived. A message of a newer protocol version is answered
// with ERROR.
func (c *Conn) recv() (message, []int, error) {
	if c.buf == nil {
		c.buf = make([]byte, HeaderSize+MaxPayload)
		// Room for SCM_CREDENTIALS too, which every message carries once
		// PassCred is on: without it an FDS batch would be truncated.
		c.oob = make([]byte, unixsock.ControlSpace(MaxBatch))
	}
	var n, oobn, flags int
	var rerr error
	resets := 0
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			n, oobn, flags, _, rerr = unix.Recvmsg(int(fd), c.buf, c.oob, unix.MSG_CMSG_CLOEXEC)
			// A peer that closed with messages of ours unread leaves a
			// one-time ECONNRESET in front of what it sent before closing.
			if rerr == unix.ECONNRESET && resets == 0 {
				resets++
				continue
			}
			if rerr != unix.EINTR {
				return rerr != unix.EAGAIN
			}
		}
	})
	if err != nil {
		return message{}, nil, err
	}
	if rerr != nil {
		return message{}, nil, fmt.Errorf("recvmsg(fd %d): %w", c.fd, rerr)
	}
	fds, cred := unixsock.ParseControl(c.oob[:oobn])
	c.sender = nil
	if cred != nil {
		c.sender = &Cred{PID: int(cred.Pid), UID: cred.Uid, GID: cred.Gid}
	}
	switch {
	case flags&unix.MSG_CTRUNC != 0:
		closeFDs(fds)
		return message{}, nil, protocolErrorf("recvmsg(fd %d): control data truncated (MSG_CTRUNC): more than %d fds attached to one message; closed the %d that arrived", c.fd, MaxBatch, len(fds))
	case flags&unix.MSG_TRUNC != 0:
		closeFDs(fds)
		return message{}, nil, protocolErrorf("recvmsg(fd %d): message truncated (MSG_TRUNC): longer than %d bytes", c.fd, len(c.buf))
	case n == 0 && len(fds) == 0:
		// recvmsg returns 0 both at the end of the connection and for a
		// zero-length message, which a SOCK_SEQPACKET peer can send.
		if c.peerClosed() {
			return message{}, nil, errClosedByPeer
		}
		return message{}, nil, protocolErrorf("empty message (0 bytes; every message starts with the %d-byte header)", HeaderSize)
	}
	m, err := decodeMessage(c.buf[:n])
	if err != nil {
		closeFDs(fds)
		if errors.Is(err, ErrVersion) {
			c.send(&message{typ: typeError, text: cleanText(err.Error())}, nil)
		}
		return message{}, nil, err
	}
	if m.typ == typeFDs {
		if len(fds) != len(m.names) {
			closeFDs(fds)
			return message{}, nil, protocolErrorf("FDS names %d fds but %d arrived with it (SCM_RIGHTS)", len(m.names), len(fds))
		}
	} else if len(fds) > 0 {
		closeFDs(fds)
		return message{}, nil, protocolErrorf("%v message came with %d fds (only FDS carries fds)", m.typ, len(fds))
	}
	return m, fds, nil
}

// peerClosed reports whether the peer has shut the connection down: after
// a recvmsg that returned 0, that tells the end of the connection from an
// empty message.
func (c *Conn) peerClosed() bool {
	closed := true
	c.rc.Control(func(fd uintptr) {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
		for {
			_, err := unix.Poll(p, 0)
			if err != unix.EINTR {
				closed = err != nil || p[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0
				return
			}
		}
	})
	return closed
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

func closeFiles(files []File) {
	for _, f := range files {
		f.File.Close()
	}
}
