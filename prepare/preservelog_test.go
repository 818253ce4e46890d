package prepare

import (
	"log"
	"strings"
	"testing"
	"time"
)

func TestPreserveLog(t *testing.T) {
	for _, tc := range []struct {
		desc     string
		logFDs   bool
		progress bool // the progress line is due at the second fd
		want     []string
	}{
		{"a line per workload", false, false, []string{
			`preserved kv: 3 fds (2 memfd, 1 socket, 2.0 MiB) in session "luoinit.kv", tokens 1-3, in `,
		}},
		{"a line per fd on request", true, false, []string{
			`preserved kv/a (memfd, 1.0 MiB) in session "luoinit.kv" token 1 in `,
			`preserved kv/b (memfd, 1.0 MiB) in session "luoinit.kv" token 2 in `,
			`preserved kv/c (socket, 0 B) in session "luoinit.kv" token 3 in `,
			`preserved kv: 3 fds (2 memfd, 1 socket, 2.0 MiB) in session "luoinit.kv", tokens 1-3, in `,
		}},
		{"progress on long work", false, true, []string{
			"preserving kv: 2 of 3 fds, ",
			`preserved kv: 3 fds (2 memfd, 1 socket, 2.0 MiB) in session "luoinit.kv", tokens 1-3, in `,
		}},
	} {
		var b strings.Builder
		s := newState(Options{Log: log.New(&b, "", 0), LogFDs: tc.logFDs})
		l := s.newPreserveLog("kv", "luoinit.kv", "", 3)
		l.fd("a", "memfd", 1<<20, 1, time.Millisecond)
		if tc.progress {
			l.next = time.Now()
		}
		l.fd("b", "memfd", 1<<20, 2, time.Millisecond)
		l.fd("c", "socket", 0, 3, time.Millisecond)
		l.done()
		lines := strings.Split(strings.TrimSpace(b.String()), "\n")
		if len(lines) != len(tc.want) {
			t.Fatalf("%s: %d lines, want %d:\n%s", tc.desc, len(lines), len(tc.want), b.String())
		}
		for i, w := range tc.want {
			if !strings.HasPrefix(lines[i], "prepare: "+w) {
				t.Errorf("%s: line %d %q, want it to start %q", tc.desc, i, lines[i], "prepare: "+w)
			}
		}
	}
}
