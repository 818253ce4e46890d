package prepare

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/proctree"
	"github.com/u-root/uio/ulog"
	"golang.org/x/sys/unix"
)

// process is a workload process prepare may stop and, on cancel, resume.
type process struct {
	workload string
	pid      int
	pidfd    int // -1 if pidfd_open failed
	mode     manifest.StopMode
	timeout  time.Duration
	stopped  bool // SIGSTOP sent (resume with SIGCONT on cancel)
	killed   bool // SIGTERM/SIGKILL sent (cannot be undone)
	// mayBeGone: a process found holding a workload's session, which may
	// have exited with the workload's main process before its turn.
	mayBeGone bool
}

// newProcess takes the mode and timeout with the workload's defaults
// applied (manifest.Workload.StopOrDefault and StopTimeoutOrDefault).
func newProcess(workload string, pid int, mode manifest.StopMode, timeout time.Duration) *process {
	p := &process{workload: workload, pid: pid, mode: mode, timeout: timeout, pidfd: -1}
	// A pidfd pins the process: a pid reused after the workload exits can
	// never receive our signals.
	if fd, err := unix.PidfdOpen(pid, 0); err == nil {
		p.pidfd = fd
	}
	return p
}

func (p *process) signal(sig unix.Signal) error {
	var err error
	if p.pidfd >= 0 {
		err = unix.PidfdSendSignal(p.pidfd, sig, nil, 0)
		if err != nil {
			err = fmt.Errorf("pidfd_send_signal(pid %d, %s): %w", p.pid, unix.SignalName(sig), err)
		}
	} else {
		err = unix.Kill(p.pid, sig)
		if err != nil {
			err = fmt.Errorf("kill(%d, %s): %w", p.pid, unix.SignalName(sig), err)
		}
	}
	return err
}

// waitExit waits up to d for the process to exit.
func (p *process) waitExit(d time.Duration) bool {
	if p.pidfd >= 0 {
		fds := []unix.PollFd{{Fd: int32(p.pidfd), Events: unix.POLLIN}}
		deadline := time.Now().Add(d)
		for {
			left := time.Until(deadline)
			if left < 0 {
				left = 0
			}
			n, err := unix.Poll(fds, int(left/time.Millisecond))
			if err == unix.EINTR {
				continue
			}
			return err == nil && n > 0
		}
	}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !alive(p.pid) {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return !alive(p.pid)
}

func alive(pid int) bool {
	st, err := procState(pid)
	return err == nil && st != 'Z' && st != 'X'
}

// procState returns the state letter of /proc/PID/stat.
func procState(pid int) (byte, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return s[i+2], nil
}

// stop quiesces the process as its workload's stop mode says: "term" sends
// SIGTERM and SIGKILL after the timeout (and logs that); "sigstop" sends
// SIGSTOP and waits until the kernel reports it stopped.
func (p *process) stop(log ulog.Logger) error {
	switch p.mode {
	case manifest.StopSigstop:
		if err := p.signal(unix.SIGSTOP); err != nil {
			if p.mayBeGone && errors.Is(err, unix.ESRCH) {
				return nil
			}
			return err
		}
		p.stopped = true
		deadline := time.Now().Add(p.timeout)
		for {
			st, err := procState(p.pid)
			if err != nil || st == 'T' || st == 't' {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("workload %q (pid %d) did not stop within %v", p.workload, p.pid, p.timeout)
			}
			time.Sleep(time.Millisecond)
		}
	default:
		if err := p.signal(unix.SIGTERM); err != nil {
			if errors.Is(err, unix.ESRCH) {
				return nil // already gone
			}
			return err
		}
		p.killed = true
		if p.waitExit(p.timeout) {
			return nil
		}
		log.Printf("workload %q (pid %d) did not exit within %v of SIGTERM: sending SIGKILL", p.workload, p.pid, p.timeout)
		if err := p.signal(unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			return err
		}
		if !p.waitExit(5 * time.Second) {
			return fmt.Errorf("workload %q (pid %d) survived SIGKILL", p.workload, p.pid)
		}
		return nil
	}
}

// resume undoes a SIGSTOP. A terminated workload cannot be resumed.
func (p *process) resume() error {
	if !p.stopped {
		return nil
	}
	p.stopped = false
	return p.signal(unix.SIGCONT)
}

func (p *process) close() {
	if p.pidfd >= 0 {
		unix.Close(p.pidfd)
		p.pidfd = -1
	}
}

// sparesRequester makes the workload processes that the requester of
// this live update runs under stop with SIGSTOP instead of exiting: the
// requester waits for the reboot, so a workload waiting for it (a shell,
// an update agent) would hold the freeze for its whole stop_timeout.
func (s *state) sparesRequester() {
	if s.o.Requester <= 0 {
		return
	}
	for _, p := range s.procs {
		if p.mode == manifest.StopSigstop || !proctree.Descendant(s.o.Requester, p.pid) {
			continue
		}
		s.log.Printf("workload %q (pid %d) runs the process that asked for this live update (pid %d): stopping it with SIGSTOP, not waiting for it to exit",
			p.workload, p.pid, s.o.Requester)
		p.mode = manifest.StopSigstop
	}
}

// runStopCommands runs the stop_command of every workload that has one
// and a process to stop, all at once, and waits for them all. One that
// fails fails the freeze before any workload is stopped: the caller
// cancels, and a workload that exited after its own command succeeded is
// started again by its init (Options.Cancelled).
func (s *state) runStopCommands() error {
	running := map[string]bool{}
	for _, p := range s.procs {
		running[p.workload] = true
	}
	var ws []*manifest.Workload
	for i := range s.m.Workloads {
		w := &s.m.Workloads[i]
		if len(w.StopCommand) == 0 {
			continue
		}
		if !running[w.Name] {
			s.log.Printf("workload %q is not running: its stop_command is not run", w.Name)
			continue
		}
		ws = append(ws, w)
	}
	if len(ws) == 0 {
		return nil
	}
	errs := make([]error, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		timeout := w.StopTimeoutOrDefault()
		s.log.Printf("workload %q: running its stop_command %q (at most %v)", w.Name, w.StopCommand, timeout)
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			if err := s.o.RunCommand(w, timeout); err != nil {
				errs[i] = fmt.Errorf("workload %q: stop_command %q failed after %v: %w", w.Name, w.StopCommand, time.Since(t0).Round(time.Millisecond), err)
				return
			}
			s.log.Printf("workload %q: stop_command exited 0 in %v", w.Name, time.Since(t0).Round(time.Millisecond))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w; no workload was stopped", err)
	}
	return nil
}
