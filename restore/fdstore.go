package restore

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/notify"
	"github.com/luoinit/luoinit/wellknown"
	"golang.org/x/sys/unix"
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
	s.provideMemfds(w, store)
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

// provideMemfds creates the memfds the config gives a size
// ([[workload.fd]] size) that w's fd store does not hold yet, and stores
// them, in config order: before the first start they are the store's
// first fds, at 3, 4, ... One that a live update preserved (or dropped)
// and that did not come back is not replaced by an empty one: the
// workload starts without it, as it would without any lost fd.
func (s *Supervisor) provideMemfds(w *Workload, store *notify.Store) {
	have := map[string]bool{}
	for _, n := range store.Names() {
		have[n] = true
	}
	for _, fd := range w.Spec.FDs {
		if fd.Size == 0 || have[fd.Name] {
			continue
		}
		if fd.Token != 0 || fd.Dropped {
			s.log.Printf("workload %q: memfd %q (%d bytes) was carried by the live update and did not come back; luoinit does not replace it with an empty one", w.Spec.Name, fd.Name, int64(fd.Size))
			continue
		}
		f, err := newMemfd(fd.Name, int64(fd.Size))
		if err != nil {
			s.log.Printf("workload %q: creating its memfd %q: %v", w.Spec.Name, fd.Name, err)
			continue
		}
		if r := store.Add(fd.Name, []*os.File{f}); r.Added != 1 {
			s.log.Printf("workload %q: its memfd %q did not fit its fd store (fdstore_max %d): not passed", w.Spec.Name, fd.Name, store.Limit())
			continue
		}
		have[fd.Name] = true
		s.log.Printf("workload %q: created memfd %q of %d bytes in its fd store", w.Spec.Name, fd.Name, int64(fd.Size))
	}
}

// newMemfd creates a memfd named name of size bytes, sealed against
// growing and shrinking: a preserved memfd's size is frozen anyway, and
// the seal says so to every program that maps it.
func newMemfd(name string, size int64) (*os.File, error) {
	const nameMax = 249 // memfd_create(2): the name's limit, without "memfd:"
	if len(name) > nameMax {
		name = name[:nameMax]
	}
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create(%q, MFD_CLOEXEC|MFD_ALLOW_SEALING): %w", name, err)
	}
	f := os.NewFile(uintptr(fd), "memfd:"+name)
	if err := unix.Ftruncate(fd, size); err != nil {
		f.Close()
		return nil, fmt.Errorf("ftruncate(memfd %q, %d): %w", name, size, err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_GROW|unix.F_SEAL_SHRINK); err != nil {
		f.Close()
		return nil, fmt.Errorf("fcntl(memfd %q, F_ADD_SEALS, F_SEAL_GROW|F_SEAL_SHRINK): %w", name, err)
	}
	return f, nil
}

// finishFDStoreSession finishes w's session once its fds were passed:
// they are PID 1's own fds now, kept in the fd store. It says whether it
// did, and what to add to the log line.
func (s *Supervisor) finishFDStoreSession(w *Workload) (bool, string) {
	if w.Session == nil {
		return false, ""
	}
	if err := finish(w.Session, s.o.FinishTries, s.log); err != nil {
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
