package main

import (
	"errors"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/wellknown"
)

// arenaName is the name of the arena memfd in a handoff.
const arenaName = "arena"

// restoreArena returns the store and its memfd: the arena luoinit hands
// over after a live update if it hands one over, else a new arena of size
// bytes (no handoff advertised, or a handoff of no files: a cold boot). A
// handoff that fails, that brings fds but no arena, or whose arena is
// damaged is an error: kvcache does not serve an empty store in place of
// one that luoinit kept.
func restoreArena(workload string, size int64, timeout time.Duration, logger *log.Logger) (*Store, *os.File, error) {
	files, err := handoff.Receive(workload, timeout)
	switch {
	case errors.Is(err, handoff.ErrNoHandoff):
		logger.Printf("no handoff (neither %s nor %s is set): starting with a new arena", wellknown.EnvHandoffFD, wellknown.EnvHandoffSocket)
		return newArena(size, logger)
	case err != nil:
		return nil, nil, fmt.Errorf("receiving the arena from luoinit: %w", err)
	case len(files) == 0:
		logger.Printf("the handoff from luoinit brought no fds (a cold boot): starting with a new arena")
		return newArena(size, logger)
	}
	var arena *os.File
	var others []string
	for _, f := range files {
		if f.Name == arenaName {
			arena = f.File
			continue
		}
		others = append(others, fmt.Sprintf("%q", f.Name))
		f.File.Close()
	}
	if arena == nil {
		return nil, nil, fmt.Errorf("the handoff from luoinit brought fds %s but no %q; not starting with an empty store in its place", strings.Join(others, ", "), arenaName)
	}
	if len(others) > 0 {
		logger.Printf("the handoff from luoinit also brought fds %s, which kvcache does not use; closed them", strings.Join(others, ", "))
	}
	st, err := openFileArena(arena)
	if err != nil {
		arena.Close()
		return nil, nil, fmt.Errorf("restoring the arena luoinit handed over: %w", err)
	}
	s := st.Stats()
	logger.Printf("restored the arena from luoinit: %s, %d entries, %d bytes used, generation %d", sizeString(s.Size), s.Entries, s.Used, s.Generation)
	if n := st.Note(); n != "" {
		logger.Printf("restoring the arena: %s", n)
	}
	if size != s.Size {
		logger.Printf("note: --arena-size %s applies to new arenas; the restored one is %s", sizeString(size), sizeString(s.Size))
	}
	return st, arena, nil
}

// newArena makes a memfd of size bytes with an empty arena in it.
func newArena(size int64, logger *log.Logger) (*Store, *os.File, error) {
	f, err := newMemfd("kvcache-arena", size)
	if err != nil {
		return nil, nil, fmt.Errorf("making the arena: %w", err)
	}
	st, err := createFileArena(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("making the arena: %w", err)
	}
	logger.Printf("new arena: a %s memfd", sizeString(size))
	return st, f, nil
}

// pushArena gives the arena memfd to luoinit prepare, serving the handoff
// socket at socketPath, as workload: luoinit preserves it across the kexec
// and hands it back to the next kvcache. arena stays open: the writes that
// come after the push still land in the memory luoinit keeps.
func pushArena(arena *os.File, socketPath, workload string, timeout time.Duration) error {
	return handoff.Push(socketPath, workload, []handoff.File{{Name: arenaName, File: arena}}, timeout)
}

// sizeString is n bytes for a human: "64 MiB", "1536 KiB", "300 bytes".
func sizeString(n int64) string {
	for _, u := range []struct {
		shift uint
		name  string
	}{{30, "GiB"}, {20, "MiB"}, {10, "KiB"}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d %s", n>>u.shift, u.name)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
