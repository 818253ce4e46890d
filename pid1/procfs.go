package pid1

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// pfKthread is PF_KTHREAD in the flags of /proc/<pid>/stat.
const pfKthread = 0x00200000

// procStat is what luoinit reads from /proc/<pid>/stat (proc(5)).
type procStat struct {
	Pid   int
	Comm  string
	State byte // R, S, D, Z, T, ...
	PPid  int
	Flags uint64
}

// parseStat parses /proc/<pid>/stat. comm may hold spaces and parentheses,
// so it is what lies between the first '(' and the last ')'.
func parseStat(s string) (procStat, error) {
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("stat %q: no (comm)", s)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(s[:open]))
	if err != nil {
		return procStat{}, fmt.Errorf("stat %q: pid: %w", s, err)
	}
	// After comm: state ppid pgrp session tty_nr tpgid flags ...
	f := strings.Fields(s[end+1:])
	if len(f) < 7 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("stat %q: %d fields after comm, want at least 7", s, len(f))
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, fmt.Errorf("stat %q: ppid: %w", s, err)
	}
	flags, err := strconv.ParseUint(f[6], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("stat %q: flags: %w", s, err)
	}
	return procStat{Pid: pid, Comm: s[open+1 : end], State: f[0][0], PPid: ppid, Flags: flags}, nil
}

// userProcesses lists the processes under procRoot other than self and
// kernel threads: what Shutdown waits for. A process that is gone by the
// time its stat is read is left out.
func userProcesses(procRoot string, self int) ([]procStat, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, err
	}
	var ps []procStat
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "stat"))
		if err != nil {
			continue
		}
		st, err := parseStat(string(b))
		if err != nil || st.Flags&pfKthread != 0 || st.State == 'X' {
			continue
		}
		ps = append(ps, st)
	}
	return ps, nil
}

// describeProcs is "123 (sleep), 456 (kv)", with at most max of them.
func describeProcs(ps []procStat, max int) string {
	var parts []string
	for i, p := range ps {
		if i == max {
			parts = append(parts, fmt.Sprintf("and %d more", len(ps)-max))
			break
		}
		parts = append(parts, fmt.Sprintf("%d (%s)", p.Pid, p.Comm))
	}
	return strings.Join(parts, ", ")
}
