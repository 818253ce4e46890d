package notify

import (
	"fmt"
	"os"
	"sync"

	"github.com/luoinit/luoinit/handoff"
	"golang.org/x/sys/unix"
)

// Store is one workload's fd store: the fds it sent with FDSTORE=1, in the
// order they came, each under its FDNAME (names need not be unique). PID 1
// keeps them while the workload runs and across its restarts, and passes
// them to each new start (LISTEN_FDS). Safe for concurrent use.
type Store struct {
	workload string
	limit    int

	mu      sync.Mutex
	entries []entry
}

type entry struct {
	name     string
	file     *os.File
	dev, ino uint64
}

// NewStore makes the empty store of a workload that may keep up to limit
// fds (manifest.Workload.FDStoreMaxOrDefault; 0 refuses every fd).
func NewStore(workload string, limit int) *Store {
	return &Store{workload: workload, limit: limit}
}

// Limit is the most fds the store keeps.
func (s *Store) Limit() int { return s.limit }

// Len is how many fds the store holds.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// AddResult says what Add did with the fds it was given.
type AddResult struct {
	Added      int // newly stored
	Duplicates int // already in the store (the same file), closed
	Refused    int // over the limit, closed
	Failed     int // fstat failed (the error is in Err), closed
	Err        error
}

// Add takes ownership of files and stores each under name, in order. As
// systemd does, an fd that refers to a file already in the store (same
// device and inode) is closed and not stored twice, and once the store
// holds Limit fds the rest are closed: the caller logs the result.
func (s *Store) Add(name string, files []*os.File) AddResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	var r AddResult
	for _, f := range files {
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			r.Failed++
			r.Err = fmt.Errorf("fstat(fd %d): %w", f.Fd(), err)
			f.Close()
			continue
		}
		if s.has(uint64(st.Dev), st.Ino) {
			r.Duplicates++
			f.Close()
			continue
		}
		if len(s.entries) >= s.limit {
			r.Refused++
			f.Close()
			continue
		}
		s.entries = append(s.entries, entry{name: name, file: f, dev: uint64(st.Dev), ino: st.Ino})
		r.Added++
	}
	return r
}

func (s *Store) has(dev, ino uint64) bool {
	for _, e := range s.entries {
		if e.dev == dev && e.ino == ino {
			return true
		}
	}
	return false
}

// Remove closes and drops every stored fd named name, and says how many.
func (s *Store) Remove(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.entries[:0]
	n := 0
	for _, e := range s.entries {
		if e.name == name {
			e.file.Close()
			n++
			continue
		}
		kept = append(kept, e)
	}
	clear(s.entries[len(kept):])
	s.entries = kept
	return n
}

// Put stores files as they are, each under its own name, in order, with
// no limit: the fd store of a workload as it came through a live update
// (the limit applied when they were first stored). Duplicates of stored
// files are closed. It takes ownership of the files.
func (s *Store) Put(files []handoff.File) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range files {
		var st unix.Stat_t
		if err := unix.Fstat(int(f.File.Fd()), &st); err == nil && s.has(uint64(st.Dev), st.Ino) {
			f.File.Close()
			continue
		}
		s.entries = append(s.entries, entry{name: f.Name, file: f.File, dev: uint64(st.Dev), ino: st.Ino})
	}
}

// Dup returns a duplicate (close-on-exec) of every stored fd with its
// name, in store order; the caller owns and closes them. An fd that
// cannot be duplicated fails the whole call, with none left open.
func (s *Store) Dup() ([]handoff.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]handoff.File, 0, len(s.entries))
	for _, e := range s.entries {
		fd, err := unix.FcntlInt(e.file.Fd(), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			for _, f := range out {
				f.File.Close()
			}
			return nil, fmt.Errorf("workload %q fd store: fcntl(fd %d, F_DUPFD_CLOEXEC) of %q: %w", s.workload, e.file.Fd(), e.name, err)
		}
		out = append(out, handoff.File{Name: e.name, File: os.NewFile(uintptr(fd), fmt.Sprintf("fdstore:%s/%s", s.workload, e.name))})
	}
	return out, nil
}

// Names lists the stored fds' names in store order.
func (s *Store) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.entries))
	for i, e := range s.entries {
		out[i] = e.name
	}
	return out
}

// Close closes every stored fd.
func (s *Store) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.entries {
		e.file.Close()
	}
	s.entries = nil
}
