package restore

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/notify"
)

// What every workload started by PID 1 gets from systemd's notification
// protocol: NOTIFY_SOCKET, its fd store, readiness by READY=1.

// defaultShim is the luoinit binary that runs the LISTEN_PID shim
// (notify.ExecListen): in PID 1, /proc/self/exe resolves in the forked
// child to PID 1's own binary.
const defaultShim = "/proc/self/exe"

// socket is w's notification socket and fd store. A socket that could
// not be made is logged once; the store is there all the same.
func (s *Supervisor) socket(w *Workload) *notify.Socket {
	sock, err := s.o.Notify.Open(w.Spec)
	if err != nil {
		s.log.Printf("workload %q: %v; it gets no NOTIFY_SOCKET", w.Spec.Name, err)
	}
	return sock
}

// startProcess starts w with the config's environment, then env, then
// NOTIFY_SOCKET (a later KEY=value replaces an earlier one of the same
// KEY: what PID 1 sets wins over the config), and extra as fds 3, 4, ....
// With listen names, extra are passed in sd_listen_fds style: LISTEN_FDS
// and LISTEN_FDNAMES here, LISTEN_PID set by the shim, which then
// executes the workload's program with the same pid.
func (s *Supervisor) startProcess(w *Workload, env []string, extra []*os.File, listen []string) (Process, error) {
	sock := s.socket(w)
	spec := w.Spec
	spec.Env = mergeEnv(spec.Env, env, sock.Env(), notify.ListenEnv(listen))
	if len(listen) > 0 {
		spec.Argv = notify.ShimArgv(s.o.Shim, spec.Argv)
	}
	p, err := s.start.Start(spec, spec.Env, extra)
	if err != nil {
		return nil, err
	}
	sock.Started(p.Pid())
	return p, nil
}

// mergeEnv joins KEY=value lists in order; a KEY set again replaces the
// earlier value in place, so that each KEY appears once (getenv(3) would
// take the first).
func mergeEnv(lists ...[]string) []string {
	var out []string
	at := map[string]int{}
	for _, l := range lists {
		for _, kv := range l {
			k, _, _ := strings.Cut(kv, "=")
			if i, ok := at[k]; ok {
				out[i] = kv
				continue
			}
			at[k] = len(out)
			out = append(out, kv)
		}
	}
	return out
}

// exited tells w's notification socket that its process is gone.
func (s *Supervisor) exited(w *Workload) {
	s.socket(w).Exited()
}

// awaitReady waits, for a workload with ready = "notify", until its first
// run sends READY=1, bounded by the handoff timeout; the result then says
// it was back in service at that moment, or that it never said so.
func (s *Supervisor) awaitReady(w *Workload, p Process) {
	if w.Spec.ReadyOrDefault() != manifest.ReadyNotify {
		return
	}
	sock := s.socket(w)
	var gone <-chan struct{}
	if d, ok := p.(interface{ Done() <-chan struct{} }); ok {
		gone = d.Done()
	}
	timer := time.NewTimer(s.o.HandoffTimeout)
	defer timer.Stop()
	var err error
	select {
	case <-sock.Ready():
		at := sock.ReadyAt()
		s.record(w.Spec.Name, func(r *Result) { r.AckedAt, r.Ready = at, true })
		return
	case <-gone:
		err = fmt.Errorf("exited before sending READY=1")
	case <-timer.C:
		err = fmt.Errorf("no READY=1 on $NOTIFY_SOCKET within %v", s.o.HandoffTimeout)
	}
	if sock.Path() == "" {
		err = fmt.Errorf("%w (it has no notification socket)", err)
	}
	s.log.Printf("workload %q (pid %d) is not back in service (ready = %q): %v", w.Spec.Name, p.Pid(), manifest.ReadyNotify, err)
	// Never known to be back in service: no moment to report, and the
	// blackout figure is that of the workloads that came back.
	s.record(w.Spec.Name, func(r *Result) { r.ReadyErr, r.AckedAt = err, 0 })
}
