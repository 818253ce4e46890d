package notify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/proctree"
	"github.com/luoinit/luoinit/unixsock"
	"github.com/u-root/uio/ulog"
	"golang.org/x/sys/unix"
)

// scmMaxFD is the most fds the kernel attaches to one message
// (SCM_MAX_FD).
const scmMaxFD = 253

// Socket is one workload's notification socket: an AF_UNIX SOCK_DGRAM
// socket at Path, with SO_PASSCRED on, so that the kernel names the
// sender of every datagram. A datagram counts only if it comes from the
// process PID 1 started for the workload or one of its descendants (or,
// after MAINPID=, from the new main process or one of its descendants);
// any other is logged and dropped, with its fds closed.
//
// One socket per workload, rather than one shared by all as systemd has:
// the socket a datagram arrives on says which workload it is for, so the
// credentials only have to confirm the sender belongs to that workload,
// and PID 1 needs no cgroups to attribute a pid; a workload that floods
// its socket fills its own receive queue, not the others'.
type Socket struct {
	workload string
	path     string
	store    *Store
	log      ulog.Logger
	conn     *net.UnixConn // nil without a socket (Registry with no dir)
	file     *unixsock.File
	rc       syscall.RawConn

	mu      sync.Mutex
	root    int           // the process PID 1 started, 0 while none runs
	main    int           // the main process: root, or what MAINPID= named
	started chan struct{} // closed by Started, replaced by Exited
	ready   chan struct{} // closed at the first READY=1 of the current run
	readyAt time.Duration // CLOCK_BOOTTIME of that READY=1
	status  string
	closed  bool

	startWait time.Duration // the const startWait; shorter in tests
}

// listen makes the socket of workload w at path, owned by the workload's
// user so that a workload that is not root can send to it.
func listen(w manifest.Workload, path string, store *Store, log ulog.Logger) (*Socket, error) {
	s := newSocket(w.Name, store, log)
	if path == "" {
		return s, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("workload %q: notification socket: %w", w.Name, err)
	}
	// Credentials on before the socket exists in the file system (no
	// datagram can arrive without them); owned by the workload's user so
	// that a workload that is not root can send to it.
	c, file, err := unixsock.ListenPacket(path, unixsock.Config{
		Type: unix.SOCK_DGRAM, Perm: 0o600, PassCred: true,
		Owner: &unixsock.Owner{UID: int(w.UID), GID: int(w.GID)},
	})
	if err != nil {
		return nil, fmt.Errorf("workload %q: notification socket %s: %w", w.Name, path, err)
	}
	s.path, s.file, s.conn = path, file, c
	if s.rc, err = s.conn.SyscallConn(); err != nil {
		s.conn.Close()
		file.Remove()
		return nil, fmt.Errorf("workload %q: notification socket %s: %w", w.Name, path, err)
	}
	go s.serve()
	return s, nil
}

func newSocket(workload string, store *Store, log ulog.Logger) *Socket {
	return &Socket{workload: workload, store: store, log: log, started: make(chan struct{}), ready: make(chan struct{}), startWait: startWait}
}

// Path is the socket's path, "" if there is none.
func (s *Socket) Path() string { return s.path }

// Store is the workload's fd store.
func (s *Socket) Store() *Store { return s.store }

// Env is what the workload's environment gets: NOTIFY_SOCKET, if there
// is a socket.
func (s *Socket) Env() []string {
	if s.path == "" {
		return nil
	}
	return []string{EnvNotifySocket + "=" + s.path}
}

// Started says that pid runs the workload now: datagrams from it and its
// descendants count from here on, and Ready waits for this run's READY=1.
// A datagram that came while no run was known waited for this call.
func (s *Socket) Started(pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.root, s.main = pid, pid
	s.ready = make(chan struct{})
	s.readyAt = 0
	select {
	case <-s.started:
	default:
		close(s.started)
	}
}

// Exited says that the workload's process is gone: datagrams wait for the
// next Started to be judged.
func (s *Socket) Exited() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.root, s.main = 0, 0
	select {
	case <-s.started:
		s.started = make(chan struct{})
	default:
	}
}

// Ready is closed when the current run sent READY=1.
func (s *Socket) Ready() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready
}

// ReadyAt is CLOCK_BOOTTIME when the current run sent READY=1, 0 before.
func (s *Socket) ReadyAt() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readyAt
}

// MainPID is the workload's main process: the one PID 1 started, or the
// one it named with MAINPID=; 0 while none runs.
func (s *Socket) MainPID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.main
}

// Status is the last STATUS= the workload sent.
func (s *Socket) Status() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Close stops serving and removes the socket file (unless another file
// has replaced it). The store is left as
// it is.
func (s *Socket) Close() error {
	s.mu.Lock()
	s.closed = true
	select {
	case <-s.started:
	default:
		close(s.started) // a datagram waiting for a run is dropped
	}
	s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.file.Remove()
	return err
}

// datagram is one received datagram: its bytes, the fds that came with
// it and the sender's credentials.
type datagram struct {
	data  []byte
	fds   []*os.File
	cred  *unix.Ucred
	trunc string // why it was cut, if it was
}

func (d *datagram) closeFDs() {
	for _, f := range d.fds {
		f.Close()
	}
	d.fds = nil
}

// serve reads datagrams until the socket is closed.
func (s *Socket) serve() {
	defer func() {
		if p := recover(); p != nil {
			s.log.Printf("workload %q: notification socket: panic: %v (no more notifications from it)", s.workload, p)
		}
	}()
	buf := make([]byte, MaxDatagram+1)
	oob := make([]byte, unixsock.ControlSpace(scmMaxFD))
	for {
		d, err := s.receive(buf, oob)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Printf("workload %q: notification socket %s: %v (no more notifications from it)", s.workload, s.path, err)
			}
			return
		}
		s.handle(d)
	}
}

// receive reads one datagram with its fds (close-on-exec) and the
// sender's credentials.
func (s *Socket) receive(buf, oob []byte) (*datagram, error) {
	var n, oobn, flags int
	var rerr error
	err := s.rc.Read(func(fd uintptr) bool {
		for {
			n, oobn, flags, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
			if rerr != unix.EINTR {
				return rerr != unix.EAGAIN
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if rerr != nil {
		return nil, fmt.Errorf("recvmsg: %w", rerr)
	}
	fds, cred := unixsock.ParseControl(oob[:oobn])
	d := &datagram{data: buf[:n], cred: cred}
	for _, fd := range fds {
		d.fds = append(d.fds, os.NewFile(uintptr(fd), fmt.Sprintf("notify:%s", s.workload)))
	}
	switch {
	case flags&unix.MSG_CTRUNC != 0:
		d.trunc = fmt.Sprintf("control data truncated (MSG_CTRUNC): more than %d fds or no room for the credentials", scmMaxFD)
	case flags&unix.MSG_TRUNC != 0 || n > MaxDatagram:
		d.trunc = fmt.Sprintf("longer than %d bytes (MSG_TRUNC)", MaxDatagram)
	}
	return d, nil
}

// handle judges one datagram and does what it asks. It owns d's fds:
// whatever is not stored is closed.
func (s *Socket) handle(d *datagram) {
	defer d.closeFDs()
	from := "an unknown sender"
	if d.cred != nil {
		from = fmt.Sprintf("pid %d (uid %d)", d.cred.Pid, d.cred.Uid)
	}
	if d.trunc != "" {
		s.log.Printf("workload %q: datagram from %s dropped: %s; its %d fds closed", s.workload, from, d.trunc, len(d.fds))
		return
	}
	if d.cred == nil || d.cred.Pid <= 0 {
		s.log.Printf("workload %q: datagram without credentials dropped; its %d fds closed", s.workload, len(d.fds))
		return
	}
	if !s.authorized(int(d.cred.Pid)) {
		return
	}
	m, err := Parse(d.data)
	if err != nil {
		s.log.Printf("workload %q: datagram from %s dropped: %v; its %d fds closed", s.workload, from, err, len(d.fds))
		return
	}
	for _, why := range m.Ignored {
		s.log.Printf("workload %q: %s from %s ignored", s.workload, why, from)
	}
	s.apply(m, d, from)
}

// startWait bounds how long a datagram waits for a run of the workload
// to be known: the gap between the fork and Started is short, while a
// datagram from a process of a run that is over must not hold its fds
// for good.
const startWait = 5 * time.Second

// authorized waits until a run of the workload is known, then reports
// whether pid belongs to it, logging a refusal.
func (s *Socket) authorized(pid int) bool {
	s.mu.Lock()
	started, wait := s.started, s.startWait
	s.mu.Unlock()
	select {
	case <-started:
	case <-time.After(wait):
		s.log.Printf("workload %q: datagram from pid %d refused: no process of the workload has run for %v", s.workload, pid, wait)
		return false
	}
	s.mu.Lock()
	root, main, closed := s.root, s.main, s.closed
	s.mu.Unlock()
	if closed {
		return false
	}
	if pid == root || pid == main || proctree.Descendant(pid, root) || (main != root && proctree.Descendant(pid, main)) {
		return true
	}
	s.log.Printf("workload %q: datagram from pid %d refused: not a process of the workload (main pid %d)", s.workload, pid, main)
	return false
}

// apply does what an authorized datagram asks.
func (s *Socket) apply(m Message, d *datagram, from string) {
	if m.MainPID != 0 {
		s.setMain(m.MainPID, from)
	}
	if m.StatusSet {
		s.mu.Lock()
		changed := s.status != m.Status
		s.status = m.Status
		s.mu.Unlock()
		if changed {
			s.log.Printf("workload %q: status: %s", s.workload, m.Status)
		}
	}
	if m.Stopping {
		s.log.Printf("workload %q: STOPPING=1: it is shutting down", s.workload)
	}
	if m.Ready {
		s.setReady()
	}
	switch {
	case m.FDStoreRemove:
		if !m.FDNameSet {
			s.log.Printf("workload %q: FDSTOREREMOVE=1 without a valid FDNAME= ignored", s.workload)
			break
		}
		n := s.store.Remove(m.FDName)
		s.log.Printf("workload %q: FDSTOREREMOVE=1: %d fds named %q removed from the fd store (%d left)", s.workload, n, m.FDName, s.store.Len())
	case m.FDStore:
		name := DefaultFDName
		if m.FDNameSet {
			name = m.FDName
		}
		s.storeFDs(name, d)
	}
	if len(d.fds) > 0 {
		s.log.Printf("workload %q: %d fds came without FDSTORE=1 and were closed", s.workload, len(d.fds))
	}
}

func (s *Socket) setMain(pid int, from string) {
	s.mu.Lock()
	root, main := s.root, s.main
	s.mu.Unlock()
	if pid == main {
		return
	}
	if pid != root && !proctree.Descendant(pid, root) && !proctree.Descendant(pid, main) {
		s.log.Printf("workload %q: MAINPID=%d from %s refused: not a process of the workload (main pid %d)", s.workload, pid, from, main)
		return
	}
	s.mu.Lock()
	if s.root == root { // the same run
		s.main = pid
	}
	s.mu.Unlock()
	s.log.Printf("workload %q: main pid is now %d (MAINPID= from %s)", s.workload, pid, from)
}

func (s *Socket) setReady() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.ready:
		return // this run said so already
	default:
	}
	s.readyAt = bootTime()
	close(s.ready)
	s.log.Printf("workload %q (pid %d): READY=1", s.workload, s.main)
}

func (s *Socket) storeFDs(name string, d *datagram) {
	if len(d.fds) == 0 {
		s.log.Printf("workload %q: FDSTORE=1 (FDNAME=%s) came with no fds", s.workload, name)
		return
	}
	files := d.fds
	d.fds = nil // the store owns them now
	r := s.store.Add(name, files)
	switch {
	case s.store.Limit() == 0:
		s.log.Printf("workload %q: FDSTORE=1 refused: its fd store is off (fdstore_max = 0); %d fds closed", s.workload, r.Refused)
		return
	case r.Refused > 0:
		s.log.Printf("workload %q: cannot store more fds than fdstore_max = %d; %d fds named %q closed", s.workload, s.store.Limit(), r.Refused, name)
	}
	if r.Err != nil {
		s.log.Printf("workload %q: %d fds named %q not stored: %v", s.workload, r.Failed, name, r.Err)
	}
	if r.Added > 0 || r.Duplicates > 0 {
		s.log.Printf("workload %q: fd store: %d fds named %q added, %d already stored; %d of at most %d held", s.workload, r.Added, name, r.Duplicates, s.store.Len(), s.store.Limit())
	}
}

// bootTime is CLOCK_BOOTTIME.
func bootTime() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return time.Duration(ts.Nano())
}

// Registry is PID 1's notification sockets and fd stores, by workload.
// A workload's socket and store live as long as PID 1: the store is kept
// across the workload's restarts. Safe for concurrent use.
type Registry struct {
	dir string
	log ulog.Logger

	mu      sync.Mutex
	sockets map[string]*Socket
}

// NewRegistry serves sockets in dir (created 0755 on first use). With dir
// "", workloads get fd stores but no socket and no NOTIFY_SOCKET (for
// tests of what uses the stores).
func NewRegistry(dir string, log ulog.Logger) *Registry {
	return &Registry{dir: dir, log: log, sockets: map[string]*Socket{}}
}

// Open returns workload w's socket, making it (and its empty store, with
// w.FDStoreMaxOrDefault()) the first time. If the socket cannot be made, Open
// returns the error with a Socket that has the store but no path (and so
// no NOTIFY_SOCKET); the next Open returns that one, without an error.
func (r *Registry) Open(w manifest.Workload) (*Socket, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.sockets[w.Name]; ok {
		return s, nil
	}
	path := ""
	if r.dir != "" {
		path = filepath.Join(r.dir, w.Name)
	}
	store := NewStore(w.Name, w.FDStoreMaxOrDefault())
	s, err := listen(w, path, store, r.log)
	if err != nil {
		// The store is kept all the same: what PID 1 holds for the
		// workload (fds back from a live update) must not depend on a
		// socket. The workload just gets no NOTIFY_SOCKET.
		s = newSocket(w.Name, store, r.log)
	}
	r.sockets[w.Name] = s
	return s, err
}

// FDStore returns a duplicate of each fd in the workload's store with its
// name, in store order (nil if it has none): what prepare.Options.FDStore
// asks of PID 1. The caller owns and closes them. A failure to duplicate
// is logged and gives nil, which prepare then reports as an empty store.
func (r *Registry) FDStore(workload string) []handoff.File {
	r.mu.Lock()
	s, ok := r.sockets[workload]
	r.mu.Unlock()
	if !ok {
		return nil
	}
	files, err := s.store.Dup()
	if err != nil {
		r.log.Printf("%v", err)
		return nil
	}
	return files
}
