// Package restore is the restore side of luoinit, run by PID 1 in the next
// kernel: it gets every preserved fd back by session and token, relaunches
// each workload, hands it exactly its own fds over the handoff protocol
// (or, with handoff "fdstore", puts them back in its fd store and passes
// them as LISTEN_FDS), finishes its session once the workload acknowledged
// (or started), and then keeps supervising the workloads.
//
//	pending := restore.Start(restore.BootOptions{Start: starter, Log: log, Timeline: tl})
//	// ... once /proc, /sys, /dev and the root are mounted:
//	rep, err := pending.Run() // the first handoffs are over; rep.Supervisor goes on
package restore

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/notify"
	"github.com/luoinit/luoinit/wellknown"
	"github.com/u-root/uio/ulog"
	"golang.org/x/sys/unix"
)

// Process is a started workload process.
type Process interface {
	Pid() int
	// Wait blocks until the process exited and returns its exit code
	// (128+signal for a signal).
	Wait() int
}

// Starter starts a workload's process with the given environment and
// extra files (fd 3, 4, ...), and nothing else inherited.
type Starter interface {
	Start(spec manifest.Workload, env []string, extra []*os.File) (Process, error)
}

// Options tune the supervisor.
type Options struct {
	// HandoffTimeout bounds the wait for a workload's HELLO and ACK.
	// A workload that does not connect or acknowledge in time keeps
	// running without its fds; the init keeps them and the session
	// unfinished, so that the workload's next start receives them.
	HandoffTimeout time.Duration
	// Backoff is the first delay before restarting a failed workload; it
	// doubles up to MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// FinishTries is how often FINISH is tried before it is reported.
	FinishTries int
	// Timeline takes each workload's exec, ack and finish; nil keeps none.
	Timeline *Timeline
	// Notify holds each workload's notification socket and fd store;
	// default: stores without sockets (notify.NewRegistry("")).
	Notify *notify.Registry
	// Shim is the luoinit binary that sets LISTEN_PID and executes a
	// workload that gets fds in sd_listen_fds style; default defaultShim.
	Shim string
}

// Result is what happened to one workload's handoff, for the report.
type Result struct {
	Workload  string
	Pid       int
	Delivered int           // fds handed over and acknowledged
	Lost      []Lost        // fds that did not come back from the kernel
	AckedAt   time.Duration // CLOCK_BOOTTIME when it was back in service: its ACK, its start (fdstore), or its READY=1 (Ready)
	Finished  bool          // FINISH done on its session
	Err       error         // why the handoff did not complete
	Ready     bool          // ready = "notify": AckedAt is when it sent READY=1
	ReadyErr  error         // ready = "notify": why it is not known to be back in service
}

// Supervisor runs the workloads: first start with handoff, then restarts
// as each workload's restart policy says.
type Supervisor struct {
	start Starter
	log   ulog.Logger
	o     Options

	mu      sync.Mutex
	results map[string]*Result
	pids    map[string]int // running workload processes
	hold    chan struct{}  // non-nil while a live update is being prepared
	done    chan string    // workload names whose first handoff ended
}

// newSupervisor makes a Supervisor.
func newSupervisor(start Starter, log ulog.Logger, o Options) *Supervisor {
	if o.HandoffTimeout == 0 {
		o.HandoffTimeout = defaultHandoffTimeout
	}
	if o.Backoff == 0 {
		o.Backoff = time.Second
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.FinishTries == 0 {
		o.FinishTries = 3
	}
	if o.Notify == nil {
		o.Notify = notify.NewRegistry("", log)
	}
	if o.Shim == "" {
		o.Shim = defaultShim
	}
	return &Supervisor{start: start, log: log, o: o, results: map[string]*Result{}, pids: map[string]int{}, done: make(chan string, 64)}
}

// Pids returns the pid of every running workload, by name.
func (s *Supervisor) Pids() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.pids))
	for k, v := range s.pids {
		out[k] = v
	}
	return out
}

// Hold stops restarts: a live update is being prepared and will stop the
// workloads on purpose. A workload that exits while held waits for
// Release, which starts it again (the live update was cancelled).
func (s *Supervisor) Hold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hold == nil {
		s.hold = make(chan struct{})
	}
}

// Release ends a Hold.
func (s *Supervisor) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hold != nil {
		close(s.hold)
		s.hold = nil
	}
}

func (s *Supervisor) held() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hold
}

// Run starts every workload and returns once each first handoff ended
// (acknowledged, failed or timed out); the workloads go on being
// supervised in the background.
func (s *Supervisor) Run(ws []*Workload) []Result {
	for _, w := range ws {
		s.mu.Lock()
		s.results[w.Spec.Name] = &Result{Workload: w.Spec.Name, Lost: w.Lost}
		s.mu.Unlock()
		go s.supervise(w)
	}
	for range ws {
		<-s.done
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Result, 0, len(ws))
	for _, w := range ws {
		out = append(out, *s.results[w.Spec.Name])
	}
	return out
}

// supervise owns w for the life of the system.
func (s *Supervisor) supervise(w *Workload) {
	// A panic here must not take PID 1 down: the workload loses its
	// supervisor, the system goes on.
	defer func() {
		if p := recover(); p != nil {
			s.log.Printf("workload %q: supervisor panic: %v", w.Spec.Name, p)
		}
	}()
	first := true
	backoff := s.o.Backoff
	for {
		p, err := s.launch(w, first)
		// Listed as running before Run returns, so that whoever asks
		// right after the first handoff finds it.
		if p != nil {
			s.mu.Lock()
			s.pids[w.Spec.Name] = p.Pid()
			s.mu.Unlock()
		}
		if first && p != nil {
			s.awaitReady(w, p)
		}
		if first {
			first = false
			s.done <- w.Spec.Name
		}
		if err != nil && p == nil {
			s.log.Printf("workload %q: %v", w.Spec.Name, err)
		}
		if p != nil {
			code := p.Wait()
			s.exited(w)
			s.mu.Lock()
			delete(s.pids, w.Spec.Name)
			s.mu.Unlock()
			s.log.Printf("workload %q (pid %d) exited with status %d", w.Spec.Name, p.Pid(), code)
			if h := s.held(); h != nil {
				s.log.Printf("workload %q: stopped for the live update; started again only if it is cancelled", w.Spec.Name)
				<-h
				backoff = s.o.Backoff
				continue
			}
			if code == 0 {
				backoff = s.o.Backoff
			}
			if w.Spec.RestartOrDefault() != manifest.RestartOnFailure || code == 0 {
				if len(w.Files) > 0 {
					s.log.Printf("workload %q: not restarted (restart = %q); luoinit keeps its %d undelivered fds and session %q unfinished", w.Spec.Name, w.Spec.RestartOrDefault(), len(w.Files), w.Spec.FDSession)
				}
				return
			}
		} else if w.Spec.RestartOrDefault() != manifest.RestartOnFailure {
			return
		}
		s.log.Printf("workload %q: restarting in %v (restart = on-failure)", w.Spec.Name, backoff)
		time.Sleep(backoff)
		backoff = min(2*backoff, s.o.MaxBackoff)
	}
}

// launch starts w once and hands it the fds the init still holds for it.
// It returns the process (nil if it could not start) and the handoff's
// error, if any.
func (s *Supervisor) launch(w *Workload, first bool) (Process, error) {
	switch w.Spec.Handoff {
	case manifest.HandoffNone:
		return s.launchNone(w)
	case manifest.HandoffFDStore:
		return s.launchFDStore(w)
	}
	name := w.Spec.Name
	c, childEnd, err := handoff.Socketpair()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	// Credentials on every message the child sends: on a socket pair
	// SO_PEERCRED would name the init itself.
	if err := c.PassCred(); err != nil {
		childEnd.Close()
		return nil, err
	}
	env := []string{wellknown.EnvHandoffFD + "=3", wellknown.EnvWorkload + "=" + name}
	p, err := s.startProcess(w, env, []*os.File{childEnd}, nil)
	childEnd.Close()
	if err != nil {
		s.record(name, func(r *Result) { r.Err = err })
		return nil, fmt.Errorf("starting %s: %w", strings.Join(w.Spec.Argv, " "), err)
	}
	if first {
		s.o.Timeline.MarkWorkload(PhaseExec, name)
	}
	s.log.Printf("workload %q started as pid %d with %d fds to hand over", name, p.Pid(), len(w.Files))
	t0 := time.Now()
	err = deliver(c, name, p.Pid(), w.Files, s.o.HandoffTimeout)
	if err != nil {
		s.log.Printf("workload %q (pid %d): handoff failed after %v: %v; luoinit keeps its %d fds for its next start", name, p.Pid(), time.Since(t0).Round(time.Millisecond), err, len(w.Files))
		s.record(name, func(r *Result) { r.Pid, r.Err = p.Pid(), err })
		return p, err
	}
	acked := BootTime()
	if first {
		s.o.Timeline.MarkWorkload(PhaseAck, name)
	}
	n := len(w.Files)
	for _, f := range w.Files {
		f.File.Close()
	}
	w.Files = nil
	finished := false
	hadSession := w.Session != nil
	if w.Session != nil {
		if err := finish(w.Session, s.o.FinishTries, s.log); err != nil {
			s.log.Printf("workload %q: %v", name, err)
		} else {
			finished = true
			s.o.Timeline.MarkWorkload(PhaseFinish, name)
			w.Session.Close()
			w.Session = nil
		}
	}
	if hadSession {
		s.log.Printf("workload %q (pid %d) acknowledged %d fds in %v; session %q finished: %v", name, p.Pid(), n, time.Since(t0).Round(time.Microsecond), w.Spec.FDSession, finished)
	} else {
		s.log.Printf("workload %q (pid %d) acknowledged %d fds in %v", name, p.Pid(), n, time.Since(t0).Round(time.Microsecond))
	}
	s.record(name, func(r *Result) {
		if r.Delivered == 0 {
			r.Delivered, r.AckedAt = n, acked
		}
		r.Pid, r.Err, r.Finished = p.Pid(), nil, r.Finished || finished
	})
	return p, nil
}

func (s *Supervisor) record(name string, f func(*Result)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.results[name])
}

// BootTime is CLOCK_BOOTTIME: time since this kernel started.
func BootTime() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return time.Duration(ts.Nano())
}
