package prepare

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/luo"
	"github.com/luoinit/luoinit/manifest"
	"golang.org/x/sys/unix"
)

// collect gets every workload's fds and preserves them: pidfd-mode
// workloads first (nothing to wait for), then socket-mode workloads as
// they connect.
func (s *state) collect(ctx context.Context, dev *luo.Device) error {
	pending := map[string]int{}
	for i := range s.m.Workloads {
		w := &s.m.Workloads[i]
		switch w.Handoff {
		case manifest.HandoffPidfd:
			if err := s.collectPidfd(dev, i); err != nil {
				return err
			}
		default:
			if len(w.FDs) == 0 {
				// Nothing to preserve: stop it at the freeze if its pid is
				// known, else it just goes down with the kexec.
				if pid := s.knownPid(w); pid > 0 {
					s.procs = append(s.procs, newProcess(w.Name, pid, w.StopMode(), w.StopAfter()))
				} else if s.holdsSessions(i) {
					s.logf("workload %q has no fds to hand over and its main process is gone; the processes holding its sessions are stopped at the freeze", w.Name)
				} else {
					s.logf("workload %q has no fds to hand over and no known pid; not waiting for it", w.Name)
				}
				continue
			}
			pending[w.Name] = i
		}
	}
	if len(pending) == 0 {
		return nil
	}
	l, err := handoff.Listen(s.o.Socket)
	if err != nil {
		return err
	}
	s.listener = l
	defer func() { l.Close(); s.listener = nil }()
	s.logf("waiting up to %v for %d workloads to push their fds to %s", s.o.CollectTimeout, len(pending), s.o.Socket)

	conns := make(chan *handoff.Conn)
	acceptErr := make(chan error, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				acceptErr <- err
				return
			}
			conns <- c
		}
	}()
	timer := time.NewTimer(s.o.CollectTimeout)
	defer timer.Stop()
	for len(pending) > 0 {
		select {
		case c := <-conns:
			err := s.serve(dev, c, pending)
			c.Close()
			if err != nil {
				return err
			}
		case err := <-acceptErr:
			return fmt.Errorf("accepting on %s: %w", s.o.Socket, err)
		case <-timer.C:
			return fmt.Errorf("workloads %s did not push their fds within %v", names(pending), s.o.CollectTimeout)
		case <-ctx.Done():
			return fmt.Errorf("cancelled while waiting for workloads %s: %w", names(pending), context.Cause(ctx))
		}
	}
	return nil
}

func names(m map[string]int) string {
	var out []string
	for _, n := range slices.Sorted(maps.Keys(m)) {
		out = append(out, strconv.Quote(n))
	}
	return strings.Join(out, ", ")
}

// serve handles one workload's push. A stranger or a protocol error is
// answered and skipped; a refused fd that is not optional fails prepare.
func (s *state) serve(dev *luo.Device, c *handoff.Conn, pending map[string]int) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	cred, _ := c.Peer()
	h, err := c.ReadHello()
	if err != nil {
		s.logf("connection from pid %d: %v (ignored)", cred.PID, err)
		return nil
	}
	i, ok := pending[h.Workload]
	if !ok || h.Direction != handoff.DirectionPush {
		msg := fmt.Sprintf("workload %q is not waited for (not in the config, not in socket mode, or already done)", h.Workload)
		c.SendError(msg)
		s.logf("connection from pid %d: %s (ignored)", cred.PID, msg)
		return nil
	}
	// Only the workload's own user may speak for it: another local process
	// must not get its fds preserved, nor have it stopped by the freeze.
	if w := &s.m.Workloads[i]; cred.UID != 0 && cred.UID != w.UID {
		msg := fmt.Sprintf("workload %q runs as uid %d, the connection is from uid %d (pid %d)", w.Name, w.UID, cred.UID, cred.PID)
		c.SendError(msg)
		s.logf("%s (ignored)", msg)
		return nil
	}
	files, err := c.ReceiveFiles()
	if err != nil {
		// Tell the workload, so that it fails now instead of timing out.
		c.SendAck(handoff.FDOf(err), err)
		s.logf("workload %q (pid %d): receiving fds: %v (waiting for it to try again)", h.Workload, cred.PID, err)
		return nil
	}
	// Session fds in a push are sessions the workload owns, not fds to
	// preserve in luoinit's session.
	if files, err = s.takePushed(i, cred.PID, files); err != nil {
		c.SendAck("", err)
		return err
	}
	byName := map[string]*os.File{}
	for _, f := range files {
		byName[f.Name] = f.File
		s.files = append(s.files, f.File)
	}
	w := &s.m.Workloads[i]
	if failed, err := s.preserve(dev, i, byName); err != nil {
		c.SendAck(failed, err)
		return err
	}
	if err := c.SendAck("", nil); err != nil {
		s.logf("workload %q: sending ACK: %v", w.Name, err)
	}
	delete(pending, w.Name)
	pid := cred.PID
	if known, ok := s.o.Procs[w.Name]; ok {
		pid = known // the process the init started, even if a child of it pushed
	}
	s.procs = append(s.procs, newProcess(w.Name, pid, w.StopMode(), w.StopAfter()))
	return nil
}

// collectPidfd takes the configured fd numbers out of a running process.
func (s *state) collectPidfd(dev *luo.Device, i int) error {
	w := &s.m.Workloads[i]
	pid := w.PID
	if w.PIDFile != "" {
		b, err := os.ReadFile(w.PIDFile)
		if err != nil {
			return fmt.Errorf("workload %q: pidfile: %w", w.Name, err)
		}
		if pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil || pid <= 0 {
			return fmt.Errorf("workload %q: pidfile %s does not hold a pid", w.Name, w.PIDFile)
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
	s.procs = append(s.procs, newProcess(w.Name, pid, w.StopMode(), w.StopAfter()))
	return nil
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
	sess, err := dev.CreateSession(w.Session)
	if err != nil {
		return "", fmt.Errorf("workload %q: %w", w.Name, err)
	}
	s.sessions = append(s.sessions, sess)
	token := uint64(1)
	for j := range w.FDs {
		fd := &w.FDs[j]
		f, ok := files[fd.Name]
		if !ok {
			if fd.Optional {
				fd.Dropped, fd.DropReason = true, "not handed over by the workload"
				s.logf("workload %q: optional fd %q not handed over; dropped", w.Name, fd.Name)
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
			var errno unix.Errno
			reason := err.Error()
			if errors.As(err, &errno) {
				reason = fmt.Sprintf("%s refused by LUO: %s", fd.Kind, unix.ErrnoName(errno))
			}
			if fd.Optional {
				fd.Dropped, fd.DropReason = true, reason
				s.logf("workload %q: optional fd %q (%s) dropped: %v", w.Name, fd.Name, fd.Kind, err)
				continue
			}
			return fd.Name, fmt.Errorf("workload %q fd %q (%s): %w", w.Name, fd.Name, fd.Kind, err)
		}
		fd.Token = token
		token++
		s.logf("preserved %s/%s (%s, %s) in session %q token %d in %v", w.Name, fd.Name, fd.Kind, sizeString(size), w.Session, fd.Token, time.Since(t0).Round(time.Microsecond))
	}
	return "", nil
}

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
