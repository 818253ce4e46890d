package restore

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/notify"
)

// What every workload started by PID 1 gets from the notification
// protocol (NOTIFY_SOCKET, readiness), and the start of a workload with
// handoff "fdstore": its fd store passed as systemd passes it.

// DefaultShim is the luoinit binary that runs the LISTEN_PID shim
// (notify.ExecListen): in PID 1, /proc/self/exe resolves in the forked
// child to PID 1's own binary.
const DefaultShim = "/proc/self/exe"

// socket is w's notification socket and fd store. A socket that could
// not be made is logged once; the store is there all the same.
func (s *Supervisor) socket(w *Workload) *notify.Socket {
	sock, err := s.o.Notify.Open(w.Spec)
	if err != nil {
		s.logf("workload %q: %v; it gets no NOTIFY_SOCKET", w.Spec.Name, err)
	}
	return sock
}

// startProcess starts w with env and extra (fds 3, 4, ...) plus
// NOTIFY_SOCKET. With listen names, extra are passed in sd_listen_fds
// style: LISTEN_FDS and LISTEN_FDNAMES here, LISTEN_PID set by the shim,
// which then executes the workload's program with the same pid.
func (s *Supervisor) startProcess(w *Workload, env []string, extra []*os.File, listen []string) (Process, error) {
	sock := s.socket(w)
	spec := w.Spec
	ours := append(append(sock.Env(), env...), notify.ListenEnv(listen)...)
	spec.Env = append(withoutKeys(spec.Env, ours), ours...)
	if len(listen) > 0 {
		spec.Argv = notify.ShimArgv(s.o.Shim, spec.Argv)
	}
	p, err := s.start.Start(spec, spec.Env, extra)
	if err != nil {
		return nil, err
	}
	sock.Started(p.Pid())
	return p, nil
}

// withoutKeys drops from env every KEY=value whose KEY is set in over:
// what PID 1 sets wins over the config's env.
func withoutKeys(env, over []string) []string {
	keys := map[string]bool{}
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		keys[k] = true
	}
	var out []string
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); !keys[k] {
			out = append(out, kv)
		}
	}
	return out
}

// exited tells w's notification socket that its process is gone.
func (s *Supervisor) exited(w *Workload) {
	s.socket(w).Exited()
}

// launchFDStore starts a workload of handoff "fdstore". After a live
// update the fds that came back are put in its fd store first, in
// manifest order (the order they were stored in). Every start gets the
// whole store at fds 3, 4, ... with LISTEN_FDS, LISTEN_PID and
// LISTEN_FDNAMES; PID 1's fd store keeps its own copy of each, as
// systemd's does, so that a restart or the next live update has them.
// It counts as back in service once started (ready = "notify" waits for
// READY=1 on top, in supervise); the session is finished then.
func (s *Supervisor) launchFDStore(w *Workload) (Process, error) {
	name := w.Spec.Name
	store := s.socket(w).Store()
	if len(w.Files) > 0 {
		store.Put(w.Files)
		w.Files = nil
	}
	files, err := store.Dup()
	if err != nil {
		s.record(name, func(r *Result) { r.Err = err })
		return nil, err
	}
	defer closeFiles(files)
	names := make([]string, len(files))
	extra := make([]*os.File, len(files))
	for i, f := range files {
		names[i], extra[i] = f.Name, f.File
	}
	env := []string{handoff.EnvWorkload + "=" + name}
	t0 := time.Now()
	p, err := s.startProcess(w, env, extra, names)
	if err != nil {
		s.record(name, func(r *Result) { r.Err = err })
		return nil, fmt.Errorf("starting %s: %w; luoinit keeps its %d stored fds", strings.Join(w.Spec.Argv, " "), err, len(files))
	}
	started := BootTime()
	finished, note := s.finishFDStoreSession(w)
	passed := "an empty fd store"
	if len(files) > 0 {
		passed = fmt.Sprintf("%d fds from its fd store (LISTEN_FDNAMES=%s)", len(files), strings.Join(names, ":"))
	}
	s.logf("workload %q started as pid %d with %s in %v%s", name, p.Pid(), passed, time.Since(t0).Round(time.Microsecond), note)
	s.record(name, func(r *Result) {
		if r.Pid == 0 {
			r.Delivered, r.AckedAt = len(files), started
		}
		r.Pid, r.Err, r.Finished = p.Pid(), nil, r.Finished || finished
	})
	return p, nil
}

// finishFDStoreSession finishes w's session once its fds were passed:
// they are PID 1's own fds now, kept in the fd store. It says whether it
// did, and what to add to the log line.
func (s *Supervisor) finishFDStoreSession(w *Workload) (bool, string) {
	if w.Session == nil {
		return false, ""
	}
	if err := finish(w.Session, s.o.FinishTries); err != nil {
		s.logf("workload %q: %v", w.Spec.Name, err)
		return false, fmt.Sprintf("; session %q not finished", w.Spec.Session)
	}
	w.Session.Close()
	w.Session = nil
	return true, fmt.Sprintf("; session %q finished", w.Spec.Session)
}

func closeFiles(files []handoff.File) {
	for _, f := range files {
		f.File.Close()
	}
}

// awaitReady waits, for a workload with ready = "notify", until its first
// run sends READY=1, bounded by the handoff timeout; the result then says
// it was back in service at that moment, or that it never said so.
func (s *Supervisor) awaitReady(w *Workload, p Process) {
	if w.Spec.ReadyMode() != manifest.ReadyNotify {
		return
	}
	sock := s.socket(w)
	var gone <-chan struct{}
	if d, ok := p.(interface{ Done() <-chan struct{} }); ok {
		gone = d.Done()
	}
	timer := time.NewTimer(s.o.HandoffTimeout)
	defer timer.Stop()
	var err error
	select {
	case <-sock.Ready():
		at := sock.ReadyAt()
		s.record(w.Spec.Name, func(r *Result) { r.AckedAt, r.Ready = at, true })
		return
	case <-gone:
		err = fmt.Errorf("exited before sending READY=1")
	case <-timer.C:
		err = fmt.Errorf("no READY=1 on $NOTIFY_SOCKET within %v", s.o.HandoffTimeout)
	}
	if sock.Path() == "" {
		err = fmt.Errorf("%w (it has no notification socket)", err)
	}
	s.logf("workload %q (pid %d) is not back in service (ready = %q): %v", w.Spec.Name, p.Pid(), manifest.ReadyNotify, err)
	s.record(w.Spec.Name, func(r *Result) { r.ReadyErr = err })
}
