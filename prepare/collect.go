package prepare

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/luo"
	"github.com/luoinit/luoinit/manifest"
	"golang.org/x/sys/unix"
)

// collect gets every workload's fds and preserves them: pidfd-mode and
// fdstore-mode workloads first (nothing to wait for), then socket-mode
// workloads as they connect.
func (s *state) collect(ctx context.Context, dev *luo.Device) error {
	pending := map[string]int{}
	for i := range s.m.Workloads {
		w := &s.m.Workloads[i]
		switch w.Handoff {
		case manifest.HandoffPidfd:
			if err := s.collectPidfd(dev, i); err != nil {
				return err
			}
		case manifest.HandoffFDStore:
			if err := s.collectFDStore(dev, i); err != nil {
				return err
			}
		default:
			if len(w.FDs) == 0 {
				// Nothing to preserve: stop it at the freeze if its pid is
				// known, else it just goes down with the kexec.
				if pid := s.knownPid(w); pid > 0 {
					s.procs = append(s.procs, newProcess(w.Name, pid, w.StopOrDefault(), w.StopTimeoutOrDefault()))
				} else if s.holdsSessions(i) {
					s.log.Printf("workload %q has no fds to hand over and its main process is gone; the processes holding its sessions are stopped at the freeze", w.Name)
				} else {
					s.log.Printf("workload %q has no fds to hand over and no known pid; not waiting for it", w.Name)
				}
				continue
			}
			pending[w.Name] = i
		}
	}
	if len(pending) == 0 {
		return nil
	}
	srv, err := s.listen(pending)
	if err != nil {
		return err
	}
	defer func() { srv.stop(); s.listener = nil }()
	s.log.Printf("waiting up to %v for %d workloads to push their fds to %s", s.o.CollectTimeout, len(pending), s.o.Socket)
	testStep("collect", s.log)

	timer := time.NewTimer(s.o.CollectTimeout)
	defer timer.Stop()
	for len(pending) > 0 {
		select {
		case p := <-srv.pushes:
			err := s.preservePush(dev, p, pending)
			p.conn.Close()
			if err != nil {
				return err
			}
		case err := <-srv.acceptErr:
			return fmt.Errorf("accepting on %s: %w", s.o.Socket, err)
		case <-timer.C:
			return fmt.Errorf("workloads %s did not push their fds within %v", names(pending), s.o.CollectTimeout)
		case <-ctx.Done():
			return fmt.Errorf("cancelled while waiting for workloads %s: %w", names(pending), context.Cause(ctx))
		}
	}
	return nil
}

// listen opens the push socket for the pending socket-mode workloads.
// Its mode is 0666 so that a workload running as any user can push: each
// connection's credentials (SO_PEERCRED) are the gate, checked in
// receive, and the directory is made searchable for everyone.
func (s *state) listen(pending map[string]int) (*pushServer, error) {
	dir := filepath.Dir(s.o.Socket)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("push socket directory: %w", err)
	}
	uids := map[string]uint32{}
	for name, i := range pending {
		uids[name] = s.m.Workloads[i].UID
		if uid := uids[name]; uid != 0 {
			if st, err := os.Stat(dir); err == nil && st.Mode().Perm()&0o001 == 0 {
				s.log.Printf("warning: %s is mode %#o: workload %q (uid %d) cannot reach the push socket in it", dir, st.Mode().Perm(), name, uid)
			}
		}
	}
	l, err := handoff.ListenMode(s.o.Socket, 0o666)
	if err != nil {
		return nil, err
	}
	s.listener = l
	srv := servePushes(l, uids, s.o.Procs, connTimeout, s.log)
	return srv, nil
}

func names(m map[string]int) string {
	var out []string
	for _, n := range slices.Sorted(maps.Keys(m)) {
		out = append(out, strconv.Quote(n))
	}
	return strings.Join(out, ", ")
}

// preservePush preserves one workload's pushed fds and answers it. A
// workload that already pushed is told so; a refused fd that is not
// optional fails prepare.
func (s *state) preservePush(dev *luo.Device, p *push, pending map[string]int) error {
	// The connection's deadline bounds the peer's silence, not
	// luoinit's own work: none while the fds are preserved, then
	// connTimeout for the answer to reach the workload.
	p.conn.SetDeadline(time.Time{})
	ack := func(fd string, err error) error {
		p.conn.SetDeadline(time.Now().Add(connTimeout))
		return p.conn.SendAck(fd, err)
	}
	i, ok := pending[p.workload]
	if !ok {
		closeFiles(p.files)
		msg := fmt.Sprintf("workload %q already handed over its fds", p.workload)
		ack("", errors.New(msg))
		s.log.Printf("connection from pid %d: %s (ignored)", p.cred.PID, msg)
		return nil
	}
	// Session fds in a push are sessions the workload owns, not fds to
	// preserve in luoinit's session.
	var err error
	if p.files, err = s.takePushed(i, p.cred.PID, p.files); err != nil {
		ack("", err)
		return err
	}
	byName := map[string]*os.File{}
	for _, f := range p.files {
		byName[f.Name] = f.File
		s.files = append(s.files, f.File)
	}
	w := &s.m.Workloads[i]
	if failed, err := s.preserve(dev, i, byName); err != nil {
		ack(failed, err)
		return err
	}
	// A workload not told that its fds were kept believes its push
	// failed; going on would keep what it thinks is lost. Cancel instead:
	// then its belief is true.
	if err := ack("", nil); err != nil {
		return fmt.Errorf("workload %q: its ACK could not be delivered, so it cannot know its fds were kept: cancelling the live update: %w", w.Name, err)
	}
	delete(pending, w.Name)
	pid := p.cred.PID
	if known, ok := s.o.Procs[w.Name]; ok {
		pid = known // the process the init started, even if a child of it pushed
	}
	s.procs = append(s.procs, newProcess(w.Name, pid, w.StopOrDefault(), w.StopTimeoutOrDefault()))
	return nil
}

// collectPidfd takes the configured fd numbers out of a running process.
func (s *state) collectPidfd(dev *luo.Device, i int) error {
	w := &s.m.Workloads[i]
	pid := w.PID
	if w.PIDFile != "" {
		var err error
		if pid, err = readPIDFile(w.PIDFile); err != nil {
			return fmt.Errorf("workload %q: %w", w.Name, err)
		}
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("workload %q: pidfd_open(%d, 0): %w", w.Name, pid, err)
	}
	defer unix.Close(pidfd)
	byName := map[string]*os.File{}
	for _, fd := range w.FDs {
		n, err := unix.PidfdGetfd(pidfd, *fd.Number, 0)
		if err != nil {
			if fd.Optional {
				continue // preserve records it as dropped
			}
			return fmt.Errorf("workload %q fd %q: pidfd_getfd(pid %d, fd %d): %w", w.Name, fd.Name, pid, *fd.Number, err)
		}
		f := os.NewFile(uintptr(n), fmt.Sprintf("%s/%s", w.Name, fd.Name))
		byName[fd.Name] = f
		s.files = append(s.files, f)
	}
	if _, err := s.preserve(dev, i, byName); err != nil {
		return err
	}
	s.procs = append(s.procs, newProcess(w.Name, pid, w.StopOrDefault(), w.StopTimeoutOrDefault()))
	return nil
}

// pidFileMax is more than any pidfile holds ("4194304\n" is 8 bytes).
const pidFileMax = 64

// readPIDFile reads the pid in a pidfile: decimal, surrounding white space
// allowed, 1 to manifest.PIDMax. A larger number would be cut to 32 bits by
// the kernel and name another process, which prepare would then stop.
func readPIDFile(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("pidfile: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, pidFileMax+1))
	if err != nil {
		return 0, fmt.Errorf("pidfile %s: %w", path, err)
	}
	if len(b) > pidFileMax {
		return 0, fmt.Errorf("pidfile %s: more than %d bytes, not a pid", path, pidFileMax)
	}
	text := strings.TrimSpace(string(b))
	pid, err := strconv.Atoi(text)
	if err != nil || !manifest.ValidPID(pid) {
		return 0, fmt.Errorf("pidfile %s holds %q, not a pid (1 to %d)", path, text, manifest.PIDMax)
	}
	return pid, nil
}

// preserve creates the workload's session and preserves its fds under
// tokens 1, 2, ... in config order. It returns the failing fd's name with
// the error.
func (s *state) preserve(dev *luo.Device, i int, files map[string]*os.File) (string, error) {
	w := &s.m.Workloads[i]
	known := map[string]bool{}
	for _, fd := range w.FDs {
		known[fd.Name] = true
	}
	for name := range files {
		if !known[name] {
			return name, fmt.Errorf("workload %q handed over fd %q, which its config does not declare", w.Name, name)
		}
	}
	sess, err := dev.CreateSession(w.FDSession)
	if err != nil {
		return "", fmt.Errorf("workload %q: %w", w.Name, err)
	}
	s.sessions = append(s.sessions, sess)
	plog := s.newPreserveLog(w.Name, w.FDSession, "", len(files))
	defer plog.done()
	token := uint64(1)
	for j := range w.FDs {
		fd := &w.FDs[j]
		f, ok := files[fd.Name]
		if !ok {
			if fd.Optional {
				fd.Dropped, fd.DropReason = true, "not handed over by the workload"
				s.log.Printf("workload %q: optional fd %q not handed over; dropped", w.Name, fd.Name)
				continue
			}
			return fd.Name, fmt.Errorf("workload %q did not hand over fd %q", w.Name, fd.Name)
		}
		fd.Kind = Kind(f)
		var size int64
		if st, err := f.Stat(); err == nil {
			size = st.Size()
		}
		t0 := time.Now()
		if err := sess.PreserveFD(int(f.Fd()), token); err != nil {
			err = explainPreserve(err)
			var errno unix.Errno
			reason := err.Error()
			if errors.As(err, &errno) {
				reason = fmt.Sprintf("%s refused by LUO: %s", fd.Kind, unix.ErrnoName(errno))
			}
			if fd.Optional {
				fd.Dropped, fd.DropReason = true, reason
				s.log.Printf("workload %q: optional fd %q (%s) dropped: %v", w.Name, fd.Name, fd.Kind, err)
				continue
			}
			return fd.Name, fmt.Errorf("workload %q fd %q (%s): %w", w.Name, fd.Name, fd.Kind, err)
		}
		fd.Token = token
		token++
		plog.fd(fd.Name, fd.Kind, size, fd.Token, time.Since(t0))
		if fd.Token == 1 {
			testStep("preserve:"+w.Name, s.log)
		}
	}
	return "", nil
}

// explainPreserve adds to a PRESERVE_FD error what its errno means
// there, where the errno alone misleads.
func explainPreserve(err error) error {
	if errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("%w: %s", err, preservedAlready)
	}
	return err
}

// preservedAlready is what EBUSY from PRESERVE_FD means.
const preservedAlready = "the file is preserved already, in another session of this update or in an incoming session that was never FINISHed (see the restore's log)"

func sizeString(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
