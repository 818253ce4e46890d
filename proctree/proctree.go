// Package proctree reads the process tree from /proc: the parent of a
// process, and whether one process is below another. It is the one place
// luoinit decides whether a process belongs to a workload's process tree
// (the notification socket, the push socket, the requester of a prepare).
//
//	ppid, err := proctree.Parent(pid)
//	if proctree.Descendant(peer, workloadPid) { ... } // peer is the workload or below it
package proctree

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// maxDepth bounds the walk up the process tree.
const maxDepth = 4096

// Descendant reports whether pid is ancestor or a process below it, by
// walking the parent links of /proc/PID/stat up from pid. A process that
// has exited cannot be placed (systemd has the same limit: a helper that
// sends and exits at once may not be attributed).
func Descendant(pid, ancestor int) bool {
	if ancestor <= 0 || pid <= 0 {
		return false
	}
	for depth := 0; depth < maxDepth && pid > 1; depth++ {
		if pid == ancestor {
			return true
		}
		ppid, err := Parent(pid)
		if err != nil {
			return false
		}
		pid = ppid
	}
	return pid == ancestor
}

// Parent reads the parent pid of pid from /proc/PID/stat. The command name
// (field 2) may hold spaces and parentheses, so fields are counted after
// the last ')'.
func Parent(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseParent(pid, string(b))
}

func parseParent(pid int, stat string) (int, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 2 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	return strconv.Atoi(f[1])
}
