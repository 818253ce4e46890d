package restore

// The real kernel side (RETRIEVE_SESSION, RETRIEVE_FD, FINISH after a
// kexec) and real processes started by PID 1 are covered by the VM
// scenarios in tests/scenarios; these tests drive the logic around them
// with a fake device and in-process workloads.

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/luoinit/luoinit/carry"
	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/wellknown"
	"github.com/u-root/uio/ulog"
	"golang.org/x/sys/unix"
)

type fakeSession struct {
	name      string
	files     map[uint64]string // token -> content
	sealed    bool              // its memfds carry carry.Seals
	panics    bool              // RetrieveFD panics
	finishErr []error           // returned by successive Finish calls
	finishes  int
	closed    bool
	mu        sync.Mutex
}

func (s *fakeSession) Name() string { return s.name }

func (s *fakeSession) RetrieveFD(token uint64) (*os.File, error) {
	if s.panics {
		panic("retrieve fd: a bug")
	}
	content, ok := s.files[token]
	if !ok {
		return nil, fmt.Errorf("retrieve fd token %d: %w", token, unix.ENOENT)
	}
	mk := carry.Memfd
	if s.sealed {
		mk = carry.Sealed
	}
	return mk("memfd", []byte(content))
}

func (s *fakeSession) Finish() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.finishes++
	if len(s.finishErr) > 0 {
		err := s.finishErr[0]
		s.finishErr = s.finishErr[1:]
		return err
	}
	return nil
}

func (s *fakeSession) Close() error { s.closed = true; return nil }

// File is a stand-in for the session fd: a memfd named after the session.
func (s *fakeSession) File() *os.File {
	fd, err := unix.MemfdCreate(s.name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil
	}
	return os.NewFile(uintptr(fd), "session:"+s.name)
}

type fakeDevice map[string]*fakeSession

func (d fakeDevice) RetrieveSession(name string) (Session, error) {
	s, ok := d[name]
	if !ok {
		return nil, fmt.Errorf("retrieve session %q: %w", name, unix.ENOENT)
	}
	return s, nil
}

func (d fakeDevice) Close() error { return nil }

func testManifest() *manifest.Manifest {
	return &manifest.Manifest{Workloads: []manifest.Workload{
		{Name: "kv", FDSession: "luoinit.kv", FDs: []manifest.FD{{Name: "arena", Token: 1}, {Name: "index", Token: 2}, {Name: "gone", Optional: true, Dropped: true}}},
		{Name: "web", FDSession: "luoinit.web", FDs: []manifest.FD{{Name: "cache", Token: 1}}},
		{Name: "plain"},
	}}
}

func TestRetrieveIsolatesFailures(t *testing.T) {
	dev := fakeDevice{
		"luoinit.kv": {name: "luoinit.kv", files: map[uint64]string{1: "arena data"}}, // token 2 missing
		// luoinit.web missing altogether
	}
	var log strings.Builder
	r := retrieve(dev, testManifest(), printf(func(f string, a ...any) { fmt.Fprintf(&log, f+"\n", a...) }), nil)
	if len(r.Workloads) != 3 {
		t.Fatalf("%d workloads, want 3", len(r.Workloads))
	}
	kv, web, plain := r.Workloads[0], r.Workloads[1], r.Workloads[2]
	if len(kv.Files) != 1 || kv.Files[0].Name != "arena" || len(kv.Lost) != 1 || kv.Lost[0].FD != "index" {
		t.Errorf("kv: files %v lost %v; want arena back and index lost", kv.Files, kv.Lost)
	}
	if web.Session != nil || len(web.Lost) != 1 || !errors.Is(web.Lost[0].Err, unix.ENOENT) {
		t.Errorf("web: session %v lost %v; want its one fd lost with ENOENT", web.Session, web.Lost)
	}
	if plain.Session != nil || len(plain.Files) != 0 || len(plain.Lost) != 0 {
		t.Errorf("plain (no fds) should ask nothing of the kernel")
	}
	if len(r.Lost) != 2 {
		t.Errorf("%d lost in all, want 2: %v", len(r.Lost), r.Lost)
	}
	for _, l := range r.Lost {
		for _, want := range []string{l.Workload, l.FD, l.Session} {
			if !strings.Contains(l.String(), want) {
				t.Errorf("lost line %q does not name %q", l, want)
			}
		}
	}
}

// inProcess starts "workloads" as goroutines that speak on the child end.
type inProcess struct {
	behave func(name string, c *handoff.Conn) int // returns the exit code
	pid    int                                    // the pid to claim; 0 = ours
	starts int
	mu     sync.Mutex
}

type goProc struct {
	pid  int
	done chan int
}

func (p *goProc) Pid() int  { return p.pid }
func (p *goProc) Wait() int { return <-p.done }

func (s *inProcess) Start(spec manifest.Workload, env []string, extra []*os.File) (Process, error) {
	s.mu.Lock()
	s.starts++
	s.mu.Unlock()
	if spec.Handoff == manifest.HandoffNone {
		return s.startNone(spec, env, extra)
	}
	hasFD := false
	for _, e := range env {
		hasFD = hasFD || e == wellknown.EnvHandoffFD+"=3"
	}
	if !hasFD || len(extra) != 1 {
		return nil, fmt.Errorf("env %v extra %d: the handoff socket is not advertised as fd 3", env, len(extra))
	}
	c, err := handoff.NewConn(extra[0])
	if err != nil {
		return nil, err
	}
	pid := s.pid
	if pid == 0 {
		pid = os.Getpid()
	}
	p := &goProc{pid: pid, done: make(chan int, 1)}
	go func() { p.done <- s.behave(spec.Name, c); c.Close() }()
	return p, nil
}

func pull(name string, c *handoff.Conn) ([]handoff.File, error) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.SendHello(handoff.Hello{Direction: handoff.DirectionPull, Workload: name}); err != nil {
		return nil, err
	}
	files, err := c.ReceiveFiles()
	if err != nil {
		return nil, err
	}
	return files, c.SendAck("", nil)
}

func workload(files int) (*Workload, *fakeSession) {
	s := &fakeSession{name: "luoinit.kv"}
	w := &Workload{Spec: manifest.Workload{Name: "kv", FDSession: "luoinit.kv"}, Session: s}
	for i := 0; i < files; i++ {
		fd, _ := unix.MemfdCreate("t", unix.MFD_CLOEXEC)
		w.Files = append(w.Files, handoff.File{Name: fmt.Sprintf("fd%d", i), File: os.NewFile(uintptr(fd), "memfd")})
	}
	return w, s
}

func TestSupervisorHandoff(t *testing.T) {
	quick := Options{HandoffTimeout: 300 * time.Millisecond, Backoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	for _, tc := range []struct {
		desc      string
		files     int
		restart   string
		pid       int
		finishErr []error
		behave    func(t *testing.T, calls *int) func(string, *handoff.Conn) int
		delivered int
		finished  bool
		errIs     error
		errHas    string
		starts    int
	}{
		{desc: "acknowledged", files: 3, behave: acks, delivered: 3, finished: true, starts: 1},
		{desc: "100 fds in batches", files: 100, behave: acks, delivered: 100, finished: true, starts: 1},
		{desc: "no fds", files: 0, behave: acks, delivered: 0, finished: true, starts: 1},
		{desc: "never connects", files: 2, behave: silent, errHas: "timeout", starts: 1},
		{desc: "another pid speaks", files: 1, pid: 1, behave: acks, errIs: errNotTheWorkload, starts: 1},
		{desc: "FINISH fails twice, then works", files: 1, finishErr: []error{unix.EBUSY, unix.EBUSY}, behave: acks, delivered: 1, finished: true, starts: 1},
		{desc: "FINISH keeps failing", files: 1, finishErr: []error{unix.EBUSY, unix.EBUSY, unix.EBUSY}, behave: acks, delivered: 1, finished: false, starts: 1},
		{desc: "exits before ACK, restarted", files: 2, restart: "on-failure", behave: failsOnce, delivered: 2, finished: true, starts: 2},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			w, sess := workload(tc.files)
			w.Spec.Restart = manifest.RestartPolicy(tc.restart)
			sess.finishErr = tc.finishErr
			calls := 0
			st := &inProcess{behave: tc.behave(t, &calls), pid: tc.pid}
			var logb strings.Builder
			var lmu sync.Mutex
			logged := func() string { lmu.Lock(); defer lmu.Unlock(); return logb.String() }
			sup := newSupervisor(st, printf(func(f string, a ...any) { lmu.Lock(); fmt.Fprintf(&logb, f+"\n", a...); lmu.Unlock() }), quick)
			res := sup.Run([]*Workload{w})[0]
			// A restart happens after Run returns; wait for it to settle.
			deadline := time.Now().Add(3 * time.Second)
			for tc.starts > 1 && time.Now().Before(deadline) {
				sup.mu.Lock()
				r := *sup.results["kv"]
				sup.mu.Unlock()
				if r.Delivered > 0 {
					res = r
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if n := len(tc.finishErr); n > 0 && !strings.Contains(logged(), fmt.Sprintf(`session "luoinit.kv": FINISH failed (try %d of 3)`, min(n, 2))) {
				t.Errorf("the failed FINISH tries are not logged:\n%s", logged())
			}
			if tc.finished && len(tc.finishErr) > 0 && !strings.Contains(logged(), fmt.Sprintf("FINISH done at try %d of 3", len(tc.finishErr)+1)) {
				t.Errorf("the FINISH that needed retries is not logged as done:\n%s", logged())
			}
			if res.Delivered != tc.delivered || res.Finished != tc.finished {
				t.Fatalf("delivered %d finished %v (err %v), want %d %v\nlog:\n%s", res.Delivered, res.Finished, res.Err, tc.delivered, tc.finished, logged())
			}
			if tc.errIs != nil && !errors.Is(res.Err, tc.errIs) {
				t.Fatalf("err %v, want %v", res.Err, tc.errIs)
			}
			if tc.errHas != "" && (res.Err == nil || !strings.Contains(res.Err.Error(), tc.errHas)) {
				t.Fatalf("err %v, want it to say %q", res.Err, tc.errHas)
			}
			if st.starts != tc.starts {
				t.Fatalf("%d starts, want %d", st.starts, tc.starts)
			}
			// Delivered: the init's copies are closed; not delivered: kept.
			if tc.delivered > 0 && len(w.Files) != 0 {
				t.Fatalf("init still holds %d files after the ACK", len(w.Files))
			}
			if tc.delivered == 0 && tc.files > 0 && len(w.Files) != tc.files {
				t.Fatalf("init holds %d files after a failed handoff, want all %d kept", len(w.Files), tc.files)
			}
			if !tc.finished && tc.delivered > 0 && !strings.Contains(logged(), "FINISH failed") {
				t.Fatalf("a failing FINISH is not reported:\n%s", logged())
			}
		})
	}
}

func acks(t *testing.T, _ *int) func(string, *handoff.Conn) int {
	return func(name string, c *handoff.Conn) int {
		files, err := pull(name, c)
		if err != nil {
			return 1 // the init's side of the story is what the test checks
		}
		for _, f := range files {
			f.File.Close()
		}
		return 0
	}
}

func silent(t *testing.T, _ *int) func(string, *handoff.Conn) int {
	return func(string, *handoff.Conn) int { time.Sleep(time.Second); return 0 }
}

func failsOnce(t *testing.T, calls *int) func(string, *handoff.Conn) int {
	var mu sync.Mutex
	return func(name string, c *handoff.Conn) int {
		mu.Lock()
		*calls++
		n := *calls
		mu.Unlock()
		if n == 1 {
			return 1 // dies before even saying HELLO
		}
		return acks(t, calls)(name, c)
	}
}

// While a live update is being prepared, a workload that exits (stopped on
// purpose) is not restarted; Release (a cancel) starts it again.
func TestHoldAndRelease(t *testing.T) {
	w, _ := workload(0)
	w.Spec.Restart = "on-failure"
	exits := make(chan struct{})
	st := &inProcess{behave: func(name string, c *handoff.Conn) int {
		pull(name, c)
		<-exits
		return 143
	}}
	sup := newSupervisor(st, ulog.Null, Options{HandoffTimeout: time.Second, Backoff: 10 * time.Millisecond})
	sup.Run([]*Workload{w})
	if pids := sup.Pids(); pids["kv"] != os.Getpid() {
		t.Fatalf("Pids() = %v, want kv running", pids)
	}
	sup.Hold()
	exits <- struct{}{} // the freeze stops it
	// Its exit is seen (a loaded machine may take a while), then it has
	// ten backoffs' time to be started again, which it must not be.
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, ok := sup.Pids()["kv"]; !ok {
			break
		}
		if time.Now().After(end) {
			t.Fatal("a stopped workload is still listed as running")
		}
	}
	time.Sleep(100 * time.Millisecond)
	st.mu.Lock()
	starts := st.starts
	st.mu.Unlock()
	if starts != 1 {
		t.Fatalf("%d starts while held, want 1", starts)
	}
	sup.Release()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		st.mu.Lock()
		starts = st.starts
		st.mu.Unlock()
		if starts == 2 {
			close(exits)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%d starts after Release, want 2", starts)
}

// startNone checks what a handoff = "none" workload gets: its name, no
// handoff socket, no extra fds. It then runs until the test ends.
func (s *inProcess) startNone(spec manifest.Workload, env []string, extra []*os.File) (Process, error) {
	named := false
	for _, e := range env {
		if strings.HasPrefix(e, wellknown.EnvHandoffFD+"=") || strings.HasPrefix(e, wellknown.EnvHandoffSocket+"=") {
			return nil, fmt.Errorf("workload %q with handoff none got %s", spec.Name, e)
		}
		named = named || e == wellknown.EnvWorkload+"="+spec.Name
	}
	if !named || len(extra) != 0 {
		return nil, fmt.Errorf("workload %q with handoff none: env %v, %d extra files", spec.Name, env, len(extra))
	}
	return &goProc{pid: os.Getpid(), done: make(chan int)}, nil
}

// printf makes a logger of a function, for the tests.
type printf func(format string, args ...any)

func (f printf) Printf(format string, args ...any) { f(format, args...) }
