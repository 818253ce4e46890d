package prepare

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/luo"
	"github.com/luoinit/luoinit/manifest"
	"golang.org/x/sys/unix"
)

// Workloads with handoff "fdstore" keep their fds in PID 1's fd store
// (sd_notify FDSTORE=1). Prepare takes a duplicate of each stored fd from
// PID 1 (Options.FDStore), preserves the memfds under tokens 1..n in store
// order and records them as the workload's fds, with their FDNAMEs. What
// LUO cannot carry (sockets, pipes, ...) is reported by name and left
// out; it fails the update only if the config declares it as a required
// fd. A LUO session in the store belongs to the workload itself and is
// left alone.

// errNoFDStore is wrapped when a prepare that does not run in PID 1 has a
// workload whose fds live in PID 1's fd store.
var errNoFDStore = errors.New("the fd store lives in PID 1")

// checkFDStore fails, before anything is touched, a prepare that cannot
// reach the fd stores its config needs.
func (s *state) checkFDStore() error {
	if s.o.FDStore != nil {
		return nil
	}
	var names []string
	for _, w := range s.o.Config.Workloads {
		if w.Handoff == manifest.HandoffFDStore {
			names = append(names, fmt.Sprintf("%q", w.Name))
		}
	}
	if len(names) == 0 {
		return nil
	}
	return fmt.Errorf("workloads %s keep their fds in luoinit's fd store (handoff = %q), and %w: a standalone prepare cannot reach it; "+
		"run `luoinit prepare` without --standalone on a system whose PID 1 is luoinit", strings.Join(names, ", "), manifest.HandoffFDStore, errNoFDStore)
}

// storedFD is one fd of a workload's store, as prepare judged it.
type storedFD struct {
	handoff.File
	kind string
}

// collectFDStore preserves workload i's stored memfds in its session and
// rewrites its fds in the manifest: the carried memfds in store order,
// then the declared fds that were not carried (dropped if optional).
func (s *state) collectFDStore(dev *luo.Device, i int) error {
	w := &s.m.Workloads[i]
	stored := s.o.FDStore(w.Name)
	for _, f := range stored {
		s.files = append(s.files, f.File)
	}
	carry, reasons := s.judgeStore(w, stored)
	if err := checkCarriedNames(w.Name, carry); err != nil {
		return err
	}
	if err := checkDeclared(w, carry, reasons); err != nil {
		return err
	}
	fds, err := s.preserveStored(dev, w, carry, reasons)
	if err != nil {
		return err
	}
	if w.FDs, err = s.settleDeclared(w, fds, reasons); err != nil {
		return err
	}
	s.log.Printf("workload %q: %d of the %d fds in its fd store preserved", w.Name, len(fds), len(stored))
	if pid, ok := s.o.Procs[w.Name]; ok {
		s.procs = append(s.procs, newProcess(w.Name, pid, w.StopOrDefault(), w.StopTimeoutOrDefault()))
	} else {
		s.log.Printf("workload %q is not running; nothing to stop", w.Name)
	}
	return nil
}

// judgeStore sorts a store: the memfds to carry, in store order, and by
// name why each other fd is not carried (reported here).
func (s *state) judgeStore(w *manifest.Workload, stored []handoff.File) ([]storedFD, map[string]string) {
	var carry []storedFD
	reasons := map[string]string{}
	notCarried := func(name, reason string) {
		s.log.Printf("workload %q: fd %q in its fd store is not carried across the live update: %s", w.Name, name, reason)
		if _, ok := reasons[name]; !ok {
			reasons[name] = reason
		}
	}
	for _, f := range stored {
		if session, _ := luo.IsSession(f.File); session {
			// The workload's own LUO session: not an fd luoinit preserves,
			// and it stays in the store untouched (see owned.go).
			s.log.Printf("workload %q: fd %q in its fd store is a LUO session of its own: an owned session, not an fd luoinit preserves", w.Name, f.Name)
			if _, ok := reasons[f.Name]; !ok {
				reasons[f.Name] = "a LUO session of the workload's own, not an fd luoinit preserves"
			}
			continue
		}
		switch kind := Kind(f.File); kind {
		case manifest.KindMemfd:
			carry = append(carry, storedFD{File: f, kind: kind})
		default:
			notCarried(f.Name, kind+": LUO preserves memfds only")
		}
	}
	return carry, reasons
}

// checkDeclared fails, before anything is preserved, a workload whose
// config declares a required fd that its store has no memfd for.
func checkDeclared(w *manifest.Workload, carry []storedFD, reasons map[string]string) error {
	for _, fd := range w.FDs {
		if fd.Optional || slices.ContainsFunc(carry, func(sf storedFD) bool { return sf.Name == fd.Name }) {
			continue
		}
		reason, ok := reasons[fd.Name]
		if !ok {
			reason = "not in the fd store"
		}
		return fmt.Errorf("workload %q fd %q, declared in the config and not optional, cannot be carried: %s", w.Name, fd.Name, reason)
	}
	return nil
}

// preserveStored preserves the memfds under tokens 1, 2, ... in the
// workload's session (created at the first one) and returns them as
// manifest fds. A memfd LUO refuses is reported and recorded in reasons.
func (s *state) preserveStored(dev *luo.Device, w *manifest.Workload, carry []storedFD, reasons map[string]string) ([]manifest.FD, error) {
	declared := map[string]manifest.FD{}
	for _, fd := range w.FDs {
		declared[fd.Name] = fd
	}
	var fds []manifest.FD
	var sess *luo.Session
	plog := s.newPreserveLog(w.Name, w.FDSession, ", from the fd store", len(carry))
	defer plog.done()
	for _, sf := range carry {
		if sess == nil {
			var err error
			if sess, err = dev.CreateSession(w.FDSession); err != nil {
				return nil, fmt.Errorf("workload %q: %w", w.Name, err)
			}
			s.sessions = append(s.sessions, sess)
		}
		var size int64
		if st, err := sf.File.File.Stat(); err == nil {
			size = st.Size()
		}
		token := uint64(len(fds) + 1)
		t0 := time.Now()
		if err := sess.PreserveFD(int(sf.File.File.Fd()), token); err != nil {
			reason := fmt.Sprintf("memfd refused by LUO: %v", err)
			var errno unix.Errno
			if errors.As(err, &errno) {
				reason = "memfd refused by LUO: " + unix.ErrnoName(errno)
				if errno == unix.EBUSY {
					reason += ": " + preservedAlready
				}
			}
			s.log.Printf("workload %q: fd %q in its fd store is not carried across the live update: %s", w.Name, sf.Name, reason)
			reasons[sf.Name] = reason
			continue
		}
		fd := declared[sf.Name] // keeps optional as declared; zero if undeclared
		fd.Name, fd.Kind, fd.Token = sf.Name, sf.kind, token
		fds = append(fds, fd)
		plog.fd(sf.Name, sf.kind, size, token, time.Since(t0))
	}
	return fds, nil
}

// settleDeclared appends the declared fds that were not carried, as
// dropped; a required one fails the prepare (here only if LUO refused
// its memfd: checkDeclared caught the rest before anything was done).
func (s *state) settleDeclared(w *manifest.Workload, carried []manifest.FD, reasons map[string]string) ([]manifest.FD, error) {
	fds := carried
	for _, fd := range w.FDs {
		if slices.ContainsFunc(carried, func(c manifest.FD) bool { return c.Name == fd.Name }) {
			continue
		}
		reason, ok := reasons[fd.Name]
		if !ok {
			reason = "not in the fd store"
		}
		if !fd.Optional {
			return nil, fmt.Errorf("workload %q fd %q, declared in the config and not optional, cannot be carried: %s", w.Name, fd.Name, reason)
		}
		fd.Dropped, fd.DropReason = true, reason
		fds = append(fds, fd)
		s.log.Printf("workload %q: optional fd %q dropped: %s", w.Name, fd.Name, reason)
	}
	return fds, nil
}

// checkCarriedNames refuses a store whose memfds the manifest could not
// tell apart: the manifest keys a workload's fds by name, so each carried
// memfd needs an FDNAME of its own. This fails before anything is
// preserved, rather than leave one of two same-named memfds behind.
func checkCarriedNames(workload string, carry []storedFD) error {
	seen := map[string]bool{}
	for _, sf := range carry {
		switch {
		case sf.Name == "":
			return fmt.Errorf("workload %q: a memfd in its fd store has an empty FDNAME=; luoinit records carried fds by name, so give it one", workload)
		case seen[sf.Name]:
			return fmt.Errorf("workload %q: two memfds in its fd store are named %q; luoinit records carried fds by name, so give each its own FDNAME=", workload, sf.Name)
		}
		seen[sf.Name] = true
	}
	return nil
}
