package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// newMemfd makes a memfd of size bytes (close-on-exec) to hold a new arena.
func newMemfd(name string, size int64) (*os.File, error) {
	if size < minArenaSize || size > maxArenaSize {
		return nil, fmt.Errorf("arena size %d bytes: must be %d to %d bytes", size, minArenaSize, int64(maxArenaSize))
	}
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create(%q): %w", name, err)
	}
	f := os.NewFile(uintptr(fd), "memfd:"+name)
	if err := unix.Ftruncate(fd, size); err != nil {
		f.Close()
		return nil, fmt.Errorf("ftruncate(memfd %q, %d): %w", name, size, err)
	}
	return f, nil
}

// mapFile maps all of f, shared and writable, so that writes to the
// mapping are writes to f.
func mapFile(f *os.File) ([]byte, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("fstat(%s): %w", f.Name(), err)
	}
	if st.Size < minArenaSize {
		return nil, corrupt(0, "the arena file %s is %d bytes long, smaller than any kvcache arena (%d bytes)", f.Name(), st.Size, minArenaSize)
	}
	if st.Size > maxArenaSize {
		return nil, fmt.Errorf("the arena file %s is %d bytes long, larger than any kvcache arena (%d bytes)", f.Name(), st.Size, int64(maxArenaSize))
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(st.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap(%s, %d bytes, MAP_SHARED): %w", f.Name(), st.Size, err)
	}
	return mem, nil
}

// createFileArena formats a new arena in all of f. The caller keeps f; the
// Store's Close unmaps it.
func createFileArena(f *os.File) (*Store, error) {
	return withMapping(f, CreateArena)
}

// openFileArena opens the arena in f as OpenArena does. The caller keeps
// f; the Store's Close unmaps it.
func openFileArena(f *os.File) (*Store, error) {
	return withMapping(f, OpenArena)
}

func withMapping(f *os.File, open func([]byte) (*Store, error)) (*Store, error) {
	mem, err := mapFile(f)
	if err != nil {
		return nil, err
	}
	s, err := open(mem)
	if err != nil {
		unix.Munmap(mem)
		return nil, err
	}
	s.unmap = func() error { return unix.Munmap(mem) }
	return s, nil
}
