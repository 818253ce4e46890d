package prepare

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/luo"
	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/proctree"
	"github.com/luoinit/luoinit/wellknown"
	"golang.org/x/sys/unix"
)

// Workload-owned LUO sessions. A workload (a VMM, CRIU, the kernel's LUO
// selftests) may create sessions itself. A session survives the kexec
// only while some process holds its fd at reboot(KEXEC), so prepare takes
// its own dup of each one, found three ways:
//
//   - push: the workload sent the session fd over the handoff socket (fd
//     kind "session", docs/handoff.md);
//   - fdstore: the workload put it in its fd store in PID 1;
//   - proc: the workload or one of its descendants holds it; found by
//     readlink of /proc/PID/fd/* ("anon_inode:[luo_session] NAME") and
//     taken with pidfd_getfd.
//
// prepare holds the dups until the reboot call, so stopping the workload
// (SIGTERM) does not lose its sessions; on cancel it closes them, which
// does not unpreserve anything while the workload still holds its own fd
// (the kernel acts at the last close). The manifest records each session
// by name, owner and how it came, once even if found twice.

// ownedSession is a workload's session prepare holds.
type ownedSession struct {
	workload string
	name     string
	via      manifest.SessionVia
	pid      int      // the process it was found in or pushed by; 0 from the fd store
	file     *os.File // prepare's dup, open until the reboot
}

// addOwned takes f (prepare's dup of a session fd of workload wi) into
// prepare's keeping. It refuses a name in luoinit's namespace or one that
// cannot be handed back (CheckOwnedSession) with an error naming workload,
// session and pid. The same session found again is recorded once: the
// extra dup is closed, and a push (the workload's own declaration) wins
// over the other ways for "via".
func (s *state) addOwned(wi int, f *os.File, via manifest.SessionVia, pid int, where string) error {
	w := &s.m.Workloads[wi]
	name, err := luo.SessionName(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("workload %q: LUO session %s (pid %d): reading its name: %w", w.Name, where, pid, err)
	}
	return s.admit(wi, f, name, via, pid, where)
}

// admit is addOwned once the session's name is known.
func (s *state) admit(wi int, f *os.File, name string, via manifest.SessionVia, pid int, where string) error {
	w := &s.m.Workloads[wi]
	if err := manifest.CheckOwnedSession(w, name); err != nil {
		f.Close()
		return fmt.Errorf("workload %q holds LUO session %q (%s, pid %d): %w; refusing the live update before anything is preserved or stopped", w.Name, name, where, pid, err)
	}
	for _, o := range s.owned {
		if o.name != name {
			continue
		}
		f.Close()
		if o.workload != w.Name {
			return fmt.Errorf("LUO session %q is held by workload %q (pid %d) and by workload %q (%s, pid %d): a session has one owner", name, o.workload, o.pid, w.Name, where, pid)
		}
		if via == manifest.ViaPush && o.via != manifest.ViaPush {
			o.via, o.pid = via, pid
		}
		return nil
	}
	s.owned = append(s.owned, &ownedSession{workload: w.Name, name: name, via: via, pid: pid, file: f})
	s.log.Printf("workload %q: holding its LUO session %q (found via %s, %s, pid %d) until the reboot", w.Name, name, via, where, pid)
	return nil
}

// findOwned looks for every workload's sessions in its fd store and in
// its processes. It runs before anything is preserved, so that a refused
// session leaves everything untouched.
func (s *state) findOwned() error {
	procs, err := scanProcs()
	if err != nil {
		return err
	}
	for i := range s.m.Workloads {
		w := &s.m.Workloads[i]
		if err := s.ownedFromStore(i); err != nil {
			return err
		}
		known := s.knownPid(w)
		for _, pid := range procs.workload(w.Name, w.UID, known) {
			found, err := s.ownedFromProc(i, pid)
			if err != nil {
				return err
			}
			if found && pid != known {
				s.holders = append(s.holders, holder{workload: i, pid: pid})
			}
		}
	}
	return nil
}

// knownPid is the workload's main process: the one the init started, or
// the configured pid or pidfile; 0 if none is known.
func (s *state) knownPid(w *manifest.Workload) int {
	if pid, ok := s.o.Procs[w.Name]; ok {
		return pid
	}
	if w.PID > 0 {
		return w.PID
	}
	if w.PIDFile != "" {
		if pid, err := readPidfile(w.PIDFile); err == nil {
			return pid
		}
	}
	return 0
}

func readPidfile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pidfile %s does not hold a pid", path)
	}
	return pid, nil
}

// ownedFromStore takes the session fds of workload wi's fd store. The
// store's other entries are not this code's: their dups are closed.
func (s *state) ownedFromStore(wi int) error {
	if s.o.FDStore == nil {
		return nil
	}
	var firstErr error
	for _, e := range s.o.FDStore(s.m.Workloads[wi].Name) {
		is, err := luo.IsSession(e.File)
		if err != nil || !is || firstErr != nil {
			e.File.Close()
			continue
		}
		firstErr = s.addOwned(wi, e.File, manifest.ViaFDStore, 0, fmt.Sprintf("fd store entry %q", e.Name))
	}
	return firstErr
}

// ownedFromProc takes the session fds process pid holds, and reports
// whether it held any. A process that exited meanwhile holds none.
func (s *state) ownedFromProc(wi int, pid int) (bool, error) {
	w := &s.m.Workloads[wi]
	held, err := luo.ProcSessions(pid)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("workload %q: %w", w.Name, err)
	}
	if len(held) == 0 {
		return false, nil
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return false, nil
		}
		return false, fmt.Errorf("workload %q: pidfd_open(%d, 0): %w", w.Name, pid, err)
	}
	defer unix.Close(pidfd)
	for _, h := range held {
		n, err := unix.PidfdGetfd(pidfd, h.FD, 0)
		if err != nil {
			if errors.Is(err, unix.EBADF) || errors.Is(err, unix.ESRCH) {
				continue // closed, or the process exited, since the scan
			}
			return false, fmt.Errorf("workload %q: pidfd_getfd(pid %d, fd %d) of LUO session %q: %w", w.Name, pid, h.FD, h.Name, err)
		}
		unix.CloseOnExec(n)
		f := os.NewFile(uintptr(n), fmt.Sprintf("%s:session:%d/%d", w.Name, pid, h.FD))
		if is, _ := luo.IsSession(f); !is {
			f.Close() // the fd number was reused since the scan
			continue
		}
		if err := s.addOwned(wi, f, manifest.ViaProc, pid, fmt.Sprintf("fd %d", h.FD)); err != nil {
			return false, err
		}
	}
	return true, nil
}

// takePushed splits a push into the session fds (workload-owned sessions,
// fd kind "session") and the fds to preserve.
func (s *state) takePushed(wi int, pid int, files []handoff.File) ([]handoff.File, error) {
	var rest []handoff.File
	var firstErr error
	for _, f := range files {
		is, err := luo.IsSession(f.File)
		if err != nil || !is {
			rest = append(rest, f)
			continue
		}
		if firstErr != nil {
			f.File.Close()
			continue
		}
		firstErr = s.addOwned(wi, f.File, manifest.ViaPush, pid, fmt.Sprintf("pushed as %q", f.Name))
	}
	if firstErr != nil {
		for _, f := range rest {
			f.File.Close()
		}
		return nil, firstErr
	}
	return rest, nil
}

// recordOwned writes the sessions held into the manifest, in the order
// found.
func (s *state) recordOwned() {
	for _, o := range s.owned {
		for i := range s.m.Workloads {
			if w := &s.m.Workloads[i]; w.Name == o.workload {
				w.OwnedSessions = append(w.OwnedSessions, manifest.OwnedSession{Name: o.name, Via: o.via})
			}
		}
	}
}

// holder is a process other than a workload's main one found holding a
// session of it (a daemon child): stopped at the freeze like the workload.
type holder struct {
	workload int
	pid      int
}

// procTable is one look at /proc: every process's parent and uid.
type procTable struct {
	ppid map[int]int
	uid  map[int]uint32
}

func scanProcs() (*procTable, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("readdir /proc: %w", err)
	}
	t := &procTable{ppid: map[int]int{}, uid: map[int]uint32{}}
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		ppid, err := proctree.Parent(pid)
		if err != nil {
			continue // exited meanwhile
		}
		st, err := os.Stat("/proc/" + n)
		if err != nil {
			continue
		}
		t.ppid[pid] = ppid
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			t.uid[pid] = sys.Uid
		}
	}
	return t, nil
}

// workload returns the processes of a workload, sorted: its main process
// (known, 0 if none) and every descendant of it, plus every process
// running as the workload's uid whose environment carries
// LUOINIT_WORKLOAD=name, and their descendants. The environment finds a
// daemon child whose parent exited (it was re-parented to PID 1), as the
// kernel's LUO selftests leave behind. PID 1 and this process are never a
// workload's.
func (t *procTable) workload(name string, uid uint32, known int) []int {
	children := map[int][]int{}
	for pid, ppid := range t.ppid {
		children[ppid] = append(children[ppid], pid)
	}
	in := map[int]bool{}
	var add func(pid int)
	add = func(pid int) {
		if in[pid] || pid <= 1 || pid == os.Getpid() {
			return
		}
		in[pid] = true
		for _, c := range children[pid] {
			add(c)
		}
	}
	if _, ok := t.ppid[known]; ok && known > 0 {
		add(known)
	}
	for pid := range t.ppid {
		if !in[pid] && t.uid[pid] == uid && environHas(pid, wellknown.EnvWorkload+"="+name) {
			add(pid)
		}
	}
	out := make([]int, 0, len(in))
	for pid := range in {
		out = append(out, pid)
	}
	sort.Ints(out)
	return out
}

// environMax bounds how much of a process's environment is read.
const environMax = 1 << 20

// environHas reports whether /proc/PID/environ holds the entry kv.
func environHas(pid int, kv string) bool {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, environMax))
	if err != nil {
		return false
	}
	for _, e := range bytes.Split(b, []byte{0}) {
		if string(e) == kv {
			return true
		}
	}
	return false
}

// stopHolders adds the processes found holding a workload's sessions to
// those stopped at the freeze, after the workloads' main processes. One
// may be gone by then (it was the main process's child): that is no error.
func (s *state) stopHolders() {
	stopping := map[int]bool{}
	for _, p := range s.procs {
		stopping[p.pid] = true
	}
	for _, h := range s.holders {
		if stopping[h.pid] {
			continue
		}
		stopping[h.pid] = true
		w := &s.m.Workloads[h.workload]
		p := newProcess(w.Name, h.pid, w.StopOrDefault(), w.StopTimeoutOrDefault())
		p.mayBeGone = true
		s.procs = append(s.procs, p)
	}
}

// holdsSessions reports whether processes of workload wi were found
// holding its sessions.
func (s *state) holdsSessions(wi int) bool {
	for _, h := range s.holders {
		if h.workload == wi {
			return true
		}
	}
	return false
}
