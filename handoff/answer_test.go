package handoff

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// readRaw reads one message from a raw socket within 5 s.
func readRaw(t *testing.T, raw int) (message, error) {
	t.Helper()
	tv := unix.Timeval{Sec: 5}
	unix.SetsockoptTimeval(raw, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	b := make([]byte, HeaderSize+MaxPayload)
	n, _, _, _, err := unix.Recvmsg(raw, b, nil, 0)
	if err != nil {
		return message{}, err
	}
	if n == 0 {
		return message{}, io.EOF
	}
	return decodeMessage(b[:n])
}

// A HELLO (or an ACK) that breaks the protocol is answered with ERROR
// saying why, as docs/handoff.md promises, not with a bare close; an
// empty message is a protocol error, not the end of the connection.
func TestBadMessageOutsideTransferIsAnswered(t *testing.T) {
	for _, tc := range []struct {
		desc string
		send []byte
		read func(c *Conn) error
		want string
	}{
		{"bad magic", frame(0xdeadbeef, 1, uint16(typeHello), 0, nil), func(c *Conn) error { _, err := c.ReadHello(); return err }, "bad magic 0xdeadbeef"},
		{"DONE before HELLO", msg(typeDone, donePayload(0)), func(c *Conn) error { _, err := c.ReadHello(); return err }, "got DONE, want HELLO"},
		{"HELLO with a bad name", msg(typeHello, hello(1, 1, "a/b")), func(c *Conn) error { _, err := c.ReadHello(); return err }, `workload name "a/b" contains '/'`},
		{"empty message for HELLO", []byte{}, func(c *Conn) error { _, err := c.ReadHello(); return err }, "empty message (0 bytes"},
		{"empty message for ACK", []byte{}, func(c *Conn) error { return c.ReadAck() }, "empty message (0 bytes"},
		{"HELLO for ACK", msg(typeHello, hello(1, 1, "kv")), func(c *Conn) error { return c.ReadAck() }, "got HELLO, want ACK"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			defer noLeak(t)()
			raw, c := rawPair(t)
			defer unix.Close(raw)
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := unix.SendmsgN(raw, tc.send, nil, nil, unix.MSG_NOSIGNAL); err != nil {
				t.Fatal(err)
			}
			err := tc.read(c)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v, want ErrProtocol with %q", err, tc.want)
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("error %v is taken for a closed connection", err)
			}
			m, rerr := readRaw(t, raw)
			if rerr != nil {
				t.Fatalf("no answer: %v", rerr)
			}
			if m.typ != typeError || !strings.Contains(m.text, tc.want) {
				t.Errorf("answer %v %q, want ERROR with %q", m.typ, m.text, tc.want)
			}
		})
	}
}

// A peer that closes is still "closed by peer", and is not answered.
func TestPeerClosedIsNotAnEmptyMessage(t *testing.T) {
	raw, c := rawPair(t)
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	unix.Close(raw)
	_, err := c.ReadHello()
	if !errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrProtocol) {
		t.Errorf("error %v, want io.ErrUnexpectedEOF only", err)
	}
}

// The pull side answers an empty message in the transfer with ACK error.
func TestReceiveAnswersEmptyMessage(t *testing.T) {
	defer noLeak(t)()
	raw := rawReceiver(t)
	defer unix.Close(raw)
	if _, err := unix.SendmsgN(raw, nil, nil, nil, unix.MSG_NOSIGNAL); err != nil {
		t.Fatal(err)
	}
	files, err := Receive("kv", 5*time.Second)
	if err == nil {
		closeAll(files)
		t.Fatal("no error")
	}
	if !strings.Contains(err.Error(), "empty message") {
		t.Errorf("error %v, want an empty message", err)
	}
	for {
		m, err := readRaw(t, raw)
		if err != nil {
			t.Fatalf("no ACK: %v", err)
		}
		if m.typ == typeHello {
			continue
		}
		if m.typ != typeAck || m.ok || !strings.Contains(m.text, "empty message") {
			t.Errorf("answer %v ok=%v %q, want ACK error about the empty message", m.typ, m.ok, m.text)
		}
		break
	}
}

// ListenMode sets the socket's mode whatever the umask.
func TestListenMode(t *testing.T) {
	old := unix.Umask(0o077)
	defer unix.Umask(old)
	for _, perm := range []os.FileMode{0o600, 0o660, 0o666} {
		path := filepath.Join(t.TempDir(), "h.sock")
		l, err := ListenMode(path, perm)
		if err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			t.Fatal(err)
		}
		if got := os.FileMode(st.Mode & 0o777); got != perm {
			t.Errorf("ListenMode(%o): socket mode %o", perm, got)
		}
		l.Close()
	}
}
