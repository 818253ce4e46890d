// Package control lets a `luoinit prepare` command hand its work to the
// luoinit that runs as PID 1, which owns the workloads: it started them,
// knows their pids, and holds any fds not yet handed over.
//
//	// PID 1:
//	srv, err := control.Listen(wellknown.ControlSocket, func(ctx context.Context, req control.Request, log io.Writer, cont <-chan struct{}) int { ... })
//	// the command:
//	code, err := control.Prepare(wellknown.ControlSocket, req, os.Stderr, sigs)
//
// The wire is a unix stream socket carrying JSON lines: the client sends
// one Request, then optionally {"continue":true} or {"cancel":true}; the
// server sends {"log":...} lines and a last {"exit":N}. A client that goes
// away cancels what has not yet reached the freeze.
package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/luoinit/luoinit/unixsock"
	"golang.org/x/sys/unix"
)

// Request is a prepare as the command line asked for it, with every path
// absolute.
type Request struct {
	Config         string        `json:"config"`
	Kernel         string        `json:"kernel"`
	Initrd         string        `json:"initrd,omitempty"`
	Append         string        `json:"append,omitempty"`
	ReuseCmdline   bool          `json:"reuse_cmdline,omitempty"`
	CollectTimeout time.Duration `json:"collect_timeout,omitempty"`
	DryRun         bool          `json:"dry_run,omitempty"`
	NoReboot       bool          `json:"no_reboot,omitempty"`
	RunningKernel  string        `json:"running_kernel,omitempty"`
	LogFDs         bool          `json:"log_fds,omitempty"`
	// From is the pid of the process that asked, from the connection's
	// credentials (SO_PEERCRED), never from the wire.
	From int `json:"-"`
}

// message is one JSON line either way.
type message struct {
	Request  *Request `json:"request,omitempty"`
	Continue bool     `json:"continue,omitempty"`
	Cancel   bool     `json:"cancel,omitempty"`
	Log      string   `json:"log,omitempty"`
	Exit     *int     `json:"exit,omitempty"`
}

// Handler runs one request. ctx is cancelled, with ErrCancelled as its
// cause, when the client asks to cancel or goes away; progress goes to
// log; cont is closed when the client says go on (SIGUSR1 of a
// --no-reboot prepare). It returns the exit code.
//
// cont stays a channel, not a func: it is one event that may come at any
// time, waited for in a select beside ctx.Done() (prepare.Options.Continue
// takes it as it is).
type Handler func(ctx context.Context, req Request, log io.Writer, cont <-chan struct{}) int

// ErrCancelled is the cause of a Handler's context's cancellation: the
// client asked to cancel or went away.
var ErrCancelled = errors.New("the luoinit prepare command was interrupted or went away")

// Server is PID 1's end.
type Server struct {
	l    *net.UnixListener
	file *unixsock.File
	busy sync.Mutex
}

// Listen serves h on path (mode 0600; only root may connect) until Close.
// One request runs at a time; a second client is told so. A socket file
// left at path by a server that is gone is replaced; a live server or a
// file that is not a socket is an error (see package unixsock).
func Listen(path string, h Handler) (*Server, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	l, file, err := unixsock.Listen(path, unixsock.Config{Type: unix.SOCK_STREAM, Perm: 0o600})
	if err != nil {
		return nil, fmt.Errorf("control: listen on %s: %w", path, err)
	}
	s := &Server{l: l, file: file}
	go s.serve(h)
	return s, nil
}

// Close stops serving and removes the socket file, unless another file
// has replaced it.
func (s *Server) Close() error {
	err := s.l.Close()
	s.file.Remove()
	return err
}

func (s *Server) serve(h Handler) {
	for {
		c, err := s.l.AcceptUnix()
		if err != nil {
			return
		}
		go s.handle(c, h)
	}
}

// lineWriter sends each Write as {"log":...} lines.
type lineWriter struct {
	mu  sync.Mutex
	enc *json.Encoder
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.enc.Encode(message{Log: string(w.buf[:i])})
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.enc.Encode(message{Log: string(w.buf)})
		w.buf = nil
	}
}

func (s *Server) handle(c *net.UnixConn, h Handler) {
	defer c.Close()
	enc := json.NewEncoder(c)
	exit := func(code int) { enc.Encode(message{Exit: &code}) }
	cred, err := peerCred(c)
	if err != nil || cred.Uid != 0 {
		enc.Encode(message{Log: "luoinit: only root may ask PID 1 to prepare a live update"})
		exit(1)
		return
	}
	dec := json.NewDecoder(c)
	var first message
	if err := dec.Decode(&first); err != nil || first.Request == nil {
		enc.Encode(message{Log: fmt.Sprintf("luoinit: a control request was expected: %v", err)})
		exit(2)
		return
	}
	if !s.busy.TryLock() {
		enc.Encode(message{Log: "luoinit: another live update is being prepared"})
		exit(1)
		return
	}
	defer s.busy.Unlock()
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	cont := make(chan struct{})
	go watch(dec, cancel, cont)
	lw := &lineWriter{enc: enc}
	req := *first.Request
	req.From = int(cred.Pid)
	code := h(ctx, req, lw, cont)
	lw.flush()
	exit(code)
}

// watch reads what the client sends after its request: continue, cancel,
// or the end of the connection (a cancel).
func watch(dec *json.Decoder, cancel context.CancelCauseFunc, cont chan struct{}) {
	var contOnce sync.Once
	for {
		var m message
		if err := dec.Decode(&m); err != nil || m.Cancel {
			cancel(ErrCancelled)
			return
		}
		if m.Continue {
			contOnce.Do(func() { close(cont) })
		}
	}
}

func peerCred(c *net.UnixConn) (*unix.Ucred, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	return unixsock.PeerCred(rc)
}

// ErrNoServer is wrapped by Prepare when no PID 1 luoinit listens.
var ErrNoServer = errors.New("no luoinit PID 1 is listening")

// Prepare sends req to the server at path, copies its log lines to log,
// sends continue or cancel as signals arrive on the channels, and returns
// the server's exit code.
func Prepare(path string, req Request, log io.Writer, cont, cancel <-chan struct{}) (int, error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return 0, fmt.Errorf("control: connecting to %s: %w: %w", path, ErrNoServer, err)
	}
	defer c.Close()
	enc := json.NewEncoder(c)
	if err := enc.Encode(message{Request: &req}); err != nil {
		return 0, fmt.Errorf("control: sending the request: %w", err)
	}
	go func() {
		select {
		case <-cont:
			enc.Encode(message{Continue: true})
			<-cancel
			enc.Encode(message{Cancel: true})
		case <-cancel:
			enc.Encode(message{Cancel: true})
		}
	}()
	dec := json.NewDecoder(c)
	for {
		var m message
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return 0, errors.New("control: PID 1 closed the connection without an exit status (did the system reboot?)")
			}
			return 0, fmt.Errorf("control: %w", err)
		}
		if m.Log != "" {
			fmt.Fprintln(log, m.Log)
		}
		if m.Exit != nil {
			return *m.Exit, nil
		}
	}
}
