package restore

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/wellknown"
)

// The start of a workload with handoff "fdstore": its fd store passed as
// systemd passes it (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES, fds from 3).

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
	env := []string{wellknown.EnvWorkload + "=" + name}
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
	s.log.Printf("workload %q started as pid %d with %s in %v%s", name, p.Pid(), passed, time.Since(t0).Round(time.Microsecond), note)
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
		s.log.Printf("workload %q: %v", w.Spec.Name, err)
		return false, fmt.Sprintf("; session %q not finished", w.Spec.FDSession)
	}
	w.Session.Close()
	w.Session = nil
	return true, fmt.Sprintf("; session %q finished", w.Spec.FDSession)
}

func closeFiles(files []handoff.File) {
	for _, f := range files {
		f.File.Close()
	}
}
