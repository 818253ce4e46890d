package restore

import (
	"sync"
	"time"

	"github.com/luoinit/luoinit/status"
)

// A boot's phases (status.Phase) are stamped with CLOCK_BOOTTIME (time
// since the new kernel started), so that a restore can be read as a
// timeline: init start, mounts, the root, manifest, device, every fd
// retrieved, network, and per workload its exec, its handoff and its
// FINISH. The state file carries them (package status).

// The names of the phases of a boot; per workload ones add ":" and its name.
const (
	PhaseInit         = "init"          // PID 1's first instruction (as near as Go lets it)
	PhaseSignals      = "signals"       // signal handlers and the reaper in place
	PhaseMounted      = "mounted"       // /proc, /sys, /dev, /run... mounted
	PhaseRoot         = "root"          // in the root filesystem of root= (at once without one)
	PhaseManifest     = "manifest"      // the manifest read and validated
	PhaseDevice       = "device"        // /dev/liveupdate open
	PhaseFDsRetrieved = "fds_retrieved" // every session and fd of the manifest retrieved
	PhaseRecord       = "record"        // the freeze record read (blackout figures)
	PhaseNetwork      = "network"       // the network configuration applied
	PhaseExec         = "exec"          // exec:<workload>: started
	PhaseAck          = "ack"           // ack:<workload>: acknowledged its fds (back in service)
	PhaseFinish       = "finish"        // finish:<workload>: its session finished
)

// Timeline collects the phases of a boot; safe for concurrent use (the
// workloads' supervisors mark theirs in parallel). A nil *Timeline takes
// marks and keeps nothing.
type Timeline struct {
	mu     sync.Mutex
	phases []status.Phase
}

// NewTimeline starts a timeline at init, CLOCK_BOOTTIME when PID 1 began.
func NewTimeline(init time.Duration) *Timeline {
	return &Timeline{phases: []status.Phase{{Name: PhaseInit, At: init}}}
}

// Mark stamps the phase name now.
func (t *Timeline) Mark(name string) {
	if t == nil {
		return
	}
	at := BootTime()
	t.mu.Lock()
	t.phases = append(t.phases, status.Phase{Name: name, At: at})
	t.mu.Unlock()
}

// MarkWorkload stamps a per-workload phase: phase:workload.
func (t *Timeline) MarkWorkload(phase, workload string) { t.Mark(phase + ":" + workload) }

// Phases returns a copy of the phases so far, in the order they were
// marked.
func (t *Timeline) Phases() []status.Phase {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]status.Phase(nil), t.phases...)
}
