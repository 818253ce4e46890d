package restore

// The real thing (a C daemon using systemd's protocol, PID 1, LUO and a
// kexec) is TestSystemdFDStore in tests/scenarios; these tests drive the
// supervisor's side with a recording starter and real notification
// sockets in a temp dir.

import (
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/notify"
	"github.com/luoinit/luoinit/wellknown"
	"github.com/u-root/uio/ulog"
	"golang.org/x/sys/unix"
)

// recStart records every start: argv, env and the content of each fd
// passed; its processes claim the test's pid (so that the test's own
// datagrams count as the workload's) and run behave.
type recStart struct {
	mu     sync.Mutex
	starts []started
	behave func(n int, env []string) int // n: 1 for the first start
}

type started struct {
	argv, env []string
	fds       []string // content of each extra fd
}

func (r *recStart) Start(spec manifest.Workload, env []string, extra []*os.File) (Process, error) {
	st := started{argv: spec.Argv, env: env}
	for _, f := range extra {
		b, _ := io.ReadAll(io.NewSectionReader(f, 0, 1<<20))
		st.fds = append(st.fds, string(b))
	}
	r.mu.Lock()
	r.starts = append(r.starts, st)
	n := len(r.starts)
	r.mu.Unlock()
	p := &goProc{pid: os.Getpid(), done: make(chan int, 1)}
	go func() { p.done <- r.behave(n, env) }()
	return p, nil
}

func (r *recStart) get(i int) started {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.starts[i]
}

func (r *recStart) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.starts)
}

func envValue(env []string, key string) (string, bool) {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v, true
		}
	}
	return "", false
}

// sendNotify sends one datagram to the NOTIFY_SOCKET of env.
func sendNotify(env []string, msg string) error {
	path, ok := envValue(env, notify.EnvNotifySocket)
	if !ok {
		return fmt.Errorf("no %s in %v", notify.EnvNotifySocket, env)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Sendto(fd, []byte(msg), 0, &unix.SockaddrUnix{Name: path})
}

func fdstoreWorkload(t *testing.T, contents ...string) (*Workload, *fakeSession) {
	s := &fakeSession{name: "luoinit.sd"}
	w := &Workload{Spec: manifest.Workload{Name: "sd", Argv: []string{"/bin/sd", "-v"}, FDSession: "luoinit.sd",
		Handoff: manifest.HandoffFDStore, Env: []string{"LISTEN_FDS=99", "KEEP=1"},
		UID: uint32(os.Geteuid()), GID: uint32(os.Getegid())}, Session: s}
	for i, c := range contents {
		fd, err := unix.MemfdCreate("t", unix.MFD_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		f := os.NewFile(uintptr(fd), "memfd")
		f.WriteString(c)
		w.Files = append(w.Files, handoff.File{Name: fmt.Sprintf("n%d", i), File: f})
	}
	return w, s
}

func quietLog() (ulog.Logger, func() string) {
	var mu sync.Mutex
	var b strings.Builder
	return printf(func(f string, a ...any) { mu.Lock(); fmt.Fprintf(&b, f+"\n", a...); mu.Unlock() }),
		func() string { mu.Lock(); defer mu.Unlock(); return b.String() }
}

// The fds that came back are passed in sd_listen_fds style through the
// shim, the session is finished, PID 1 keeps them in the fd store, and a
// restart gets them again.
func TestFDStoreLaunch(t *testing.T) {
	w, sess := fdstoreWorkload(t, "arena data", "log data")
	w.Spec.Restart = manifest.RestartOnFailure
	exit := make(chan int, 1)
	st := &recStart{behave: func(n int, env []string) int {
		if n == 1 {
			return 1 // fails once: restarted
		}
		return <-exit
	}}
	log, logged := quietLog()
	reg := notify.NewRegistry(t.TempDir(), log)
	sup := newSupervisor(st, log, Options{HandoffTimeout: time.Second, Backoff: 10 * time.Millisecond, Notify: reg, Shim: "/luoinit"})
	res := sup.Run([]*Workload{w})[0]
	if res.Err != nil || res.Delivered != 2 || !res.Finished || res.AckedAt == 0 || res.Ready {
		t.Fatalf("result %+v, want 2 fds delivered, session finished, in service at start\n%s", res, logged())
	}
	if sess.finishes != 1 || !sess.closed || w.Session != nil || w.Files != nil {
		t.Fatalf("finishes %d closed %v; session and files must be handed over", sess.finishes, sess.closed)
	}
	deadline := time.Now().Add(3 * time.Second)
	for st.count() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st.count() != 2 {
		t.Fatalf("%d starts, want a restart after the failure", st.count())
	}
	for i := 0; i < 2; i++ {
		s := st.get(i)
		if want := []string{"/luoinit", notify.ExecListenArg, "/bin/sd", "-v"}; !reflect.DeepEqual(s.argv, want) {
			t.Errorf("start %d: argv %q, want %q", i+1, s.argv, want)
		}
		if !reflect.DeepEqual(s.fds, []string{"arena data", "log data"}) {
			t.Errorf("start %d: fds %q, want the two memfds in manifest order", i+1, s.fds)
		}
		for key, want := range map[string]string{"LISTEN_FDS": "2", "LISTEN_FDNAMES": "n0:n1", "LUOINIT_WORKLOAD": "sd", "KEEP": "1"} {
			if got, _ := envValue(s.env, key); got != want {
				t.Errorf("start %d: %s=%q, want %q (env %q)", i+1, key, got, want, s.env)
			}
		}
		if _, ok := envValue(s.env, wellknown.EnvHandoffFD); ok {
			t.Errorf("start %d: an fdstore workload got a handoff socket", i+1)
		}
		if _, ok := envValue(s.env, notify.EnvNotifySocket); !ok {
			t.Errorf("start %d: no NOTIFY_SOCKET", i+1)
		}
		if n := slices.IndexFunc(s.env, func(kv string) bool { return strings.HasPrefix(kv, "LISTEN_FDS=") }); slices.ContainsFunc(s.env[n+1:], func(kv string) bool { return strings.HasPrefix(kv, "LISTEN_FDS=") }) {
			t.Errorf("start %d: LISTEN_FDS set twice: %q", i+1, s.env)
		}
	}
	if got := reg.FDStore("sd"); len(got) != 2 || got[0].Name != "n0" {
		t.Fatalf("PID 1's fd store holds %v, want n0 and n1 kept for the next update", got)
	} else {
		closeFiles(got)
	}
	exit <- 0
}

// A cold boot: nothing stored, no LISTEN_* and no shim.
func TestFDStoreLaunchEmpty(t *testing.T) {
	w, _ := fdstoreWorkload(t)
	w.Session, w.Spec.Env = nil, nil
	st := &recStart{behave: func(int, []string) int { return 0 }}
	log, _ := quietLog()
	sup := newSupervisor(st, log, Options{HandoffTimeout: time.Second})
	sup.Run([]*Workload{w})
	s := st.get(0)
	if !reflect.DeepEqual(s.argv, []string{"/bin/sd", "-v"}) || len(s.fds) != 0 {
		t.Fatalf("argv %q fds %d, want the program itself and no fds", s.argv, len(s.fds))
	}
	for _, key := range []string{"LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PID", notify.EnvNotifySocket} {
		if _, ok := envValue(s.env, key); ok {
			t.Errorf("%s set without fds (or without a registry dir): %q", key, s.env)
		}
	}
}

// ready = "notify": READY=1 is the moment of being back in service; a
// workload that never says it is reported.
func TestReadyNotify(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		ready bool
	}{{"READY=1 sent", true}, {"never ready", false}} {
		t.Run(tc.desc, func(t *testing.T) {
			w, _ := fdstoreWorkload(t, "x")
			w.Spec.Ready = manifest.ReadyNotify
			exit := make(chan int)
			defer close(exit)
			sent := make(chan time.Duration, 1)
			st := &recStart{behave: func(n int, env []string) int {
				if tc.ready {
					time.Sleep(100 * time.Millisecond)
					sent <- BootTime()
					if err := sendNotify(env, "STATUS=up\nREADY=1"); err != nil {
						t.Error(err)
					}
				}
				<-exit
				return 0
			}}
			log, logged := quietLog()
			sup := newSupervisor(st, log, Options{HandoffTimeout: 500 * time.Millisecond, Notify: notify.NewRegistry(t.TempDir(), log)})
			t0 := BootTime()
			res := sup.Run([]*Workload{w})[0]
			if !tc.ready {
				if res.Ready || res.AckedAt != 0 || res.ReadyErr == nil || !strings.Contains(res.ReadyErr.Error(), "no READY=1 on $NOTIFY_SOCKET within 500ms") {
					t.Fatalf("result %+v, want it reported as never ready", res)
				}
				if !strings.Contains(logged(), `workload "sd" (pid`) || !strings.Contains(logged(), "is not back in service") {
					t.Fatalf("not logged:\n%s", logged())
				}
				return
			}
			at := <-sent
			if !res.Ready || res.ReadyErr != nil || res.AckedAt < at || res.AckedAt-t0 < 100*time.Millisecond {
				t.Fatalf("result %+v (sent at %v, run at %v), want back in service at READY=1\n%s", res, at, t0, logged())
			}
			rep := Report{Results: []Result{res}, done: BootTime()}
			if st := rep.record(); st.LastReady != res.AckedAt {
				t.Fatalf("the record's last ready %v is not the READY time %v", st.LastReady, res.AckedAt)
			}
		})
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"A=1", "LUOINIT_HANDOFF_FD=7", "B=2"}, []string{"LUOINIT_HANDOFF_FD=3", "C=3"}, nil, []string{"A=9"})
	if want := []string{"A=9", "LUOINIT_HANDOFF_FD=3", "B=2", "C=3"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("mergeEnv = %q, want %q", got, want)
	}
}

// memStart records, for every fd passed at a start, its size and seals.
type memStart struct {
	mu  sync.Mutex
	fds []memInfo
	env []string
}

type memInfo struct {
	size    int64
	seals   int
	content string // the first bytes
}

func (m *memStart) Start(spec manifest.Workload, env []string, extra []*os.File) (Process, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.env = env
	for _, f := range extra {
		var st unix.Stat_t
		unix.Fstat(int(f.Fd()), &st)
		seals, _ := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
		b := make([]byte, 4)
		n, _ := f.ReadAt(b, 0)
		m.fds = append(m.fds, memInfo{size: st.Size, seals: seals, content: string(b[:n])})
	}
	p := &goProc{pid: os.Getpid(), done: make(chan int, 1)}
	p.done <- 0
	return p, nil
}

// [[workload.fd]] size: PID 1 creates the memfd before the first start,
// first in the store, sealed; a carried one is passed instead; a carried
// one that was lost is not replaced.
func TestFDStoreProvidedMemfds(t *testing.T) {
	const size = 64 << 10
	sealed := unix.F_SEAL_GROW | unix.F_SEAL_SHRINK
	for _, tc := range []struct {
		desc    string
		fds     []manifest.FD
		carried []string // contents of memfds that came back, named n0, n1, ...
		want    []memInfo
		names   string // LISTEN_FDNAMES
		log     string
	}{
		{desc: "cold boot", fds: []manifest.FD{{Name: "ram", Size: size}, {Name: "other"}, {Name: "small", Size: 5}},
			want: []memInfo{{size: size, seals: sealed, content: "\x00\x00\x00\x00"}, {size: 5, seals: sealed, content: "\x00\x00\x00\x00"}}, names: "ram:small",
			log: `created memfd "ram" of 65536 bytes`},
		{desc: "carried", fds: []manifest.FD{{Name: "n0", Size: size, Token: 1}}, carried: []string{"kept"},
			want: []memInfo{{size: 4, seals: unix.F_SEAL_SEAL, content: "kept"}}, names: "n0"},
		{desc: "carried and lost", fds: []manifest.FD{{Name: "ram", Size: size, Token: 1}, {Name: "n0", Token: 2}}, carried: []string{"kept"},
			want: []memInfo{{size: 4, seals: unix.F_SEAL_SEAL, content: "kept"}}, names: "n0",
			log: `memfd "ram" (65536 bytes) was carried by the live update and did not come back; luoinit does not replace it`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			w, _ := fdstoreWorkload(t, tc.carried...)
			w.Session, w.Spec.Env, w.Spec.FDs = nil, nil, tc.fds
			st := &memStart{}
			log, logged := quietLog()
			sup := newSupervisor(st, log, Options{HandoffTimeout: time.Second, Notify: notify.NewRegistry(t.TempDir(), log)})
			sup.Run([]*Workload{w})
			st.mu.Lock()
			defer st.mu.Unlock()
			if !reflect.DeepEqual(st.fds, tc.want) {
				t.Errorf("fds passed %+v, want %+v\n%s", st.fds, tc.want, logged())
			}
			if got, _ := envValue(st.env, "LISTEN_FDNAMES"); got != tc.names {
				t.Errorf("LISTEN_FDNAMES=%q, want %q", got, tc.names)
			}
			if !strings.Contains(logged(), tc.log) {
				t.Errorf("log lacks %q:\n%s", tc.log, logged())
			}
		})
	}
}
