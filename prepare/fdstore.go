package prepare

import (
	"errors"
	"fmt"
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
	kind   string
	reason string // why it is not carried; "" if it is
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
	declared := map[string]manifest.FD{}
	for _, fd := range w.FDs {
		declared[fd.Name] = fd
	}
	var carry, left []storedFD
	for _, f := range stored {
		sf := storedFD{File: f, kind: Kind(f.File)}
		switch sf.kind {
		case "memfd":
			carry = append(carry, sf)
		case "anon:luo_session":
			// The workload's own LUO session: not luoinit's to preserve.
			s.logf("workload %q: fd %q in its fd store is a LUO session of its own; left in the store", w.Name, f.Name)
		default:
			sf.reason = fmt.Sprintf("%s: LUO preserves memfds only", sf.kind)
			left = append(left, sf)
		}
	}
	if err := checkCarriedNames(w.Name, carry); err != nil {
		return err
	}

	var fds []manifest.FD
	var sess *luo.Session
	token := uint64(1)
	for _, sf := range carry {
		if sess == nil {
			var err error
			if sess, err = dev.CreateSession(w.Session); err != nil {
				return fmt.Errorf("workload %q: %w", w.Name, err)
			}
			s.sessions = append(s.sessions, sess)
		}
		var size int64
		if st, err := sf.File.File.Stat(); err == nil {
			size = st.Size()
		}
		t0 := time.Now()
		if err := sess.PreserveFD(int(sf.File.File.Fd()), token); err != nil {
			sf.reason = fmt.Sprintf("memfd refused by LUO: %v", err)
			var errno unix.Errno
			if errors.As(err, &errno) {
				sf.reason = fmt.Sprintf("memfd refused by LUO: %s", unix.ErrnoName(errno))
			}
			left = append(left, sf)
			continue
		}
		fd := declared[sf.Name]
		fd.Name, fd.Kind, fd.Token = sf.Name, sf.kind, token
		fds = append(fds, fd)
		delete(declared, sf.Name)
		s.logf("preserved %s/%s (%s, %s, from the fd store) in session %q token %d in %v", w.Name, sf.Name, sf.kind, sizeString(size), w.Session, token, time.Since(t0).Round(time.Microsecond))
		token++
	}

	reasons := map[string]string{}
	for _, sf := range left {
		s.logf("workload %q: fd %q in its fd store is not carried across the live update: %s", w.Name, sf.Name, sf.reason)
		if _, ok := reasons[sf.Name]; !ok {
			reasons[sf.Name] = sf.reason
		}
	}
	for _, fd := range w.FDs {
		if _, ok := declared[fd.Name]; !ok {
			continue // carried
		}
		reason, ok := reasons[fd.Name]
		if !ok {
			reason = "not in the fd store"
		}
		if !fd.Optional {
			return fmt.Errorf("workload %q fd %q, declared in the config and not optional, cannot be carried: %s", w.Name, fd.Name, reason)
		}
		fd.Dropped, fd.DropReason = true, reason
		fds = append(fds, fd)
		s.logf("workload %q: optional fd %q dropped: %s", w.Name, fd.Name, reason)
	}
	w.FDs = fds
	s.logf("workload %q: %d of the %d fds in its fd store preserved", w.Name, token-1, len(stored))

	if pid, ok := s.o.Procs[w.Name]; ok {
		s.procs = append(s.procs, newProcess(w.Name, pid, w.StopMode(), w.StopAfter()))
	} else {
		s.logf("workload %q is not running; nothing to stop", w.Name)
	}
	return nil
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
