package restore

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/luo"
	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/status"
	"github.com/u-root/uio/ulog"
)

// defaultHandoffTimeout bounds the wait for a workload's handoff, and the
// time its owner has to take each session it owns before luoinit reports
// it as not taken.
const defaultHandoffTimeout = 10 * time.Second

// owned is a LUO session a workload owns (the manifest's owned_session)
// and what became of it in this boot.
type owned struct {
	manifest.OwnedSession
	Mode manifest.SessionsMode
	// Retrieved: sessions = "retrieve" and PID 1 has the session fd; it is
	// in the workload's Files, handed over with them.
	Retrieved bool
	Result    string // a status.Session* value, once known
	Pid       int    // sessions = "leave": a process seen holding it
	Err       error
}

// retrieveOwned gets back, for a workload with sessions = "retrieve", each
// session it owns and appends its fd to the workload's handoff files under
// the session's name, so that whichever delivery the workload uses passes
// it. PID 1 never FINISHes such a session: its owner retrieves the fds in
// it and finishes it. PID 1 closes its own copy once the owner has
// acknowledged, which finishes nothing either: the kernel finishes a
// retrieved session at the last close of its file, and the owner holds
// that file. For sessions = "leave" nothing is asked of the kernel.
func retrieveOwned(dev Device, w *Workload, log ulog.Logger) {
	for _, o := range w.Spec.OwnedSessions {
		ow := &owned{OwnedSession: o, Mode: w.Spec.SessionsOrDefault()}
		w.Owned = append(w.Owned, ow)
		if ow.Mode != manifest.SessionsRetrieve {
			continue
		}
		s, err := dev.RetrieveSession(o.Name)
		if err != nil {
			ow.Result, ow.Err = status.SessionLost, err
			log.Printf("workload %q: its own session %q lost: %v", w.Spec.Name, o.Name, err)
			continue
		}
		ow.Retrieved = true
		w.Files = append(w.Files, handoff.File{Name: o.Name, File: s.File()})
		log.Printf("workload %q: its own session %q retrieved, handed over as fd %q (the workload finishes it)", w.Spec.Name, o.Name, o.Name)
	}
}

// leaveWatch tells, for the sessions left to their owners
// (sessions = "leave"), whether some process took each one.
//
// What it does: every few milliseconds it reads the links of
// /proc/PID/fd/* of every process but PID 1 and itself, and marks a
// session taken when an fd reads "anon_inode:[luo_session] NAME". It
// opens nothing and calls no ioctl, so it cannot change any session.
//
// Why not ask the kernel: /dev/liveupdate admits one opener, so opening
// it could make the owner's own open fail with EBUSY; RETRIEVE_SESSION of
// a session nobody took would take it from its owner (whose retrieve then
// fails with EINVAL), and closing it again would FINISH it, which discards
// every fd in it that was never retrieved. PID 1 must never lose a
// session by checking on it.
//
// What it cannot see: an owner that retrieves, finishes and closes its
// session between two looks leaves no trace; such a session is reported
// "not-seen" (it may be done, or left behind: the kernel keeps an untaken
// session until the next live update). A new session the owner created
// under the same name reads the same; luoinit counts it as taken.
type leaveWatch struct {
	pending map[string]*owned
	held    func() map[string]int // session name -> a pid holding it
	every   time.Duration
}

func newLeaveWatch(ws []*Workload) *leaveWatch {
	lw := &leaveWatch{pending: map[string]*owned{}, held: lookHeld, every: 5 * time.Millisecond}
	for _, w := range ws {
		for _, o := range w.Owned {
			if o.Mode == manifest.SessionsLeave && o.Result == "" {
				lw.pending[o.Name] = o
			}
		}
	}
	return lw
}

// run looks until every session was seen or until deadline, then marks
// the rest not seen.
func (lw *leaveWatch) run(deadline time.Time) {
	for len(lw.pending) > 0 {
		for name, pid := range lw.held() {
			if o, ok := lw.pending[name]; ok {
				o.Result, o.Pid = status.SessionTaken, pid
				delete(lw.pending, name)
			}
		}
		if len(lw.pending) == 0 || !time.Now().Before(deadline) {
			break
		}
		time.Sleep(lw.every)
	}
	for _, o := range lw.pending {
		o.Result = status.SessionNotSeen
	}
}

// lookHeld is heldSessions; tests replace it.
var lookHeld = heldSessions

// heldSessions lists the named session fds held by every process but
// PID 1 and this one.
func heldSessions() map[string]int {
	out := map[string]int{}
	d, err := os.Open("/proc")
	if err != nil {
		return out
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	self := os.Getpid()
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil || pid == 1 || pid == self {
			continue
		}
		sessions, _ := luo.ProcSessions(pid)
		for _, s := range sessions {
			if _, seen := out[s.Name]; !seen && s.Name != "" {
				out[s.Name] = pid
			}
		}
	}
	return out
}

// settleOwned sets the result of each retrieved session from its
// workload's first handoff, and logs every session its owner did not
// take, by name and owner.
func settleOwned(ws []*Workload, results []Result, timeout time.Duration, log ulog.Logger) {
	byName := map[string]Result{}
	for _, r := range results {
		byName[r.Workload] = r
	}
	for _, w := range ws {
		res := byName[w.Spec.Name]
		for _, o := range w.Owned {
			if o.Retrieved {
				if res.Err == nil && res.Delivered > 0 {
					o.Result = status.SessionDelivered
				} else {
					o.Result, o.Err = status.SessionUndelivered, res.Err
				}
			}
			switch o.Result {
			case status.SessionDelivered:
				log.Printf("workload %q took its session %q (handed over)", w.Spec.Name, o.Name)
			case status.SessionTaken:
				log.Printf("workload %q: its session %q is held by pid %d", w.Spec.Name, o.Name, o.Pid)
			case status.SessionUndelivered:
				log.Printf("workload %q did not take its session %q: %v; luoinit keeps it, unfinished, for the workload's next start", w.Spec.Name, o.Name, o.Err)
			case status.SessionNotSeen:
				log.Printf("workload %q: its session %q was not seen taken within %v (retrieved and closed between two looks, or left: the kernel keeps it until the next live update)", w.Spec.Name, o.Name, timeout)
			case status.SessionLost:
				log.Printf("workload %q: its session %q is lost: %v", w.Spec.Name, o.Name, o.Err)
			default:
				log.Printf("workload %q: its session %q: %s", w.Spec.Name, o.Name, fmt.Sprint(o.Result))
			}
		}
	}
}
