package main

import (
	"encoding/binary"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

func memfd(name string, flags int) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, flags|unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create(%q): %w", name, err)
	}
	return os.NewFile(uintptr(fd), "memfd:"+name), nil
}

// word is the pattern: the 8-byte word at index i of a patterned memfd.
func word(seed, i uint64) uint64 {
	x := (i + seed) * 0x9E3779B97F4A7C15
	x ^= x >> 31
	return x
}

// fillPattern makes f size bytes long and writes the pattern into it.
func fillPattern(f *os.File, size int, seed uint64) error {
	if err := f.Truncate(int64(size)); err != nil {
		return err
	}
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap %d bytes: %w", size, err)
	}
	defer unix.Munmap(m)
	for i := 0; i+8 <= size; i += 8 {
		binary.LittleEndian.PutUint64(m[i:], word(seed, uint64(i/8)))
	}
	return nil
}

// checkPattern verifies every byte of f against the pattern.
func checkPattern(f *os.File, size int, seed uint64) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() != int64(size) {
		return fmt.Errorf("size %d, want %d", st.Size(), size)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap %d bytes: %w", size, err)
	}
	defer unix.Munmap(m)
	for i := 0; i+8 <= size; i += 8 {
		if got, want := binary.LittleEndian.Uint64(m[i:]), word(seed, uint64(i/8)); got != want {
			return fmt.Errorf("byte offset %d: %#016x, want %#016x", i, got, want)
		}
	}
	return nil
}
