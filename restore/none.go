package restore

import (
	"fmt"
	"strings"

	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/wellknown"
)

// launchNone starts a workload with handoff = "none": no socket pair, no
// LUOINIT_HANDOFF_FD, nothing to wait for; luoinit keeps no fds of its,
// so it is back in service as soon as it is started. The sessions it owns
// are its own business (sessions = "leave": /dev/liveupdate was closed
// before any workload started). A start failure is recorded for the
// report; it loses no data of luoinit's, so it never degrades the state.
func (s *Supervisor) launchNone(w *Workload) (Process, error) {
	name := w.Spec.Name
	// Its notification socket all the same (sd_notify READY=1, and an fd
	// store if fdstore_max allows one).
	p, err := s.startProcess(w, []string{wellknown.EnvWorkload + "=" + name}, nil, nil)
	if err != nil {
		s.record(name, func(r *Result) { r.Err = err })
		return nil, fmt.Errorf("starting %s: %w", strings.Join(w.Spec.Argv, " "), err)
	}
	ready := BootTime()
	s.log.Printf("workload %q started as pid %d (handoff %q: nothing to hand over)", name, p.Pid(), manifest.HandoffNone)
	s.record(name, func(r *Result) {
		if r.AckedAt == 0 {
			r.AckedAt = ready
		}
		r.Pid, r.Err = p.Pid(), nil
	})
	return p, nil
}
