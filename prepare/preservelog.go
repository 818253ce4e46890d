package prepare

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// progressEvery is how often a long preservation says how far it got.
const progressEvery = 2 * time.Second

// preserveLog reports one workload's fds as they are preserved: a line
// per fd when Options.LogFDs asks for them, else one line for the
// workload at the end; and on long work a progress line every
// progressEvery. Ten thousand fds are one line, not ten thousand: on a
// serial console each line costs milliseconds.
type preserveLog struct {
	s                 *state
	workload, session string
	from              string // ", from the fd store", or ""
	total             int

	n           int
	bytes       int64
	kinds       map[string]int
	first, last uint64
	start, next time.Time
}

func (s *state) newPreserveLog(workload, session, from string, total int) *preserveLog {
	now := time.Now()
	return &preserveLog{s: s, workload: workload, session: session, from: from, total: total, kinds: map[string]int{}, start: now, next: now.Add(progressEvery)}
}

// fd records one fd preserved at token, which took took.
func (l *preserveLog) fd(name, kind string, size int64, token uint64, took time.Duration) {
	if l.n == 0 {
		l.first = token
	}
	l.n, l.bytes, l.last = l.n+1, l.bytes+size, token
	l.kinds[kind]++
	if l.s.o.LogFDs {
		l.s.log.Printf("preserved %s/%s (%s, %s%s) in session %q token %d in %v", l.workload, name, kind, sizeString(size), l.from, l.session, token, took.Round(time.Microsecond))
	}
	if now := time.Now(); !now.Before(l.next) {
		l.s.log.Printf("preserving %s: %d of %d fds, %v so far", l.workload, l.n, l.total, now.Sub(l.start).Round(time.Millisecond))
		l.next = now.Add(progressEvery)
	}
}

// done says what was preserved for the workload, in one line.
func (l *preserveLog) done() {
	if l.n == 0 {
		return
	}
	var kinds []string
	for _, k := range slices.Sorted(maps.Keys(l.kinds)) {
		kinds = append(kinds, fmt.Sprintf("%d %s", l.kinds[k], k))
	}
	tokens := fmt.Sprintf("token %d", l.first)
	if l.last != l.first {
		tokens = fmt.Sprintf("tokens %d-%d", l.first, l.last)
	}
	fds := "fds"
	if l.n == 1 {
		fds = "fd"
	}
	l.s.log.Printf("preserved %s: %d %s (%s, %s%s) in session %q, %s, in %v",
		l.workload, l.n, fds, strings.Join(kinds, ", "), sizeString(l.bytes), l.from, l.session, tokens, time.Since(l.start).Round(time.Microsecond))
}
