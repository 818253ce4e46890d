package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/wellknown"
	"golang.org/x/sys/unix"
)

// A test runs this binary again as kvcache itself when runMainEnv is "1".
const runMainEnv = "KVCACHE_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// filledArena makes a memfd of size bytes holding an arena with keys
// keyName(0..n-1), as a kvcache before a live update leaves it. It returns
// the memfd and what it holds.
func filledArena(t *testing.T, size int64, n int) (*os.File, map[string]string) {
	t.Helper()
	f, err := newMemfd("kvcache-test", size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := createFileArena(f)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	want := map[string]string{}
	for i := range n {
		k := keyName(i)
		want[k] = valueFor(k)
		if err := st.Set(k, want[k]); err != nil {
			t.Fatal(err)
		}
	}
	return f, want
}

// offerHandoff does what luoinit (PID 1) does after a kexec: it makes a
// socket pair, advertises one end in LUOINIT_HANDOFF_FD and, on the other,
// waits for the workload's HELLO (pull) and sends files; or, if refuse is
// set, answers ERROR. The channel gets the workload's ACK (nil for ok) or
// what went wrong.
func offerHandoff(t *testing.T, workload string, files []handoff.File, refuse string) <-chan error {
	t.Helper()
	c, child, err := handoff.Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	// Receive closes the advertised fd: give it a copy of its own.
	fd, err := unix.FcntlInt(child.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	child.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(wellknown.EnvHandoffFD, strconv.Itoa(fd))
	t.Setenv(wellknown.EnvHandoffSocket, "")
	return serveHandoff(c, workload, files, refuse)
}

func serveHandoff(c *handoff.Conn, workload string, files []handoff.File, refuse string) <-chan error {
	done := make(chan error, 1)
	go func() {
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		h, err := c.ReadHello()
		if err != nil {
			done <- err
			return
		}
		if h.Workload != workload || h.Direction != handoff.DirectionPull {
			c.SendError("unexpected HELLO")
			done <- fmt.Errorf("HELLO for %q (%v), want %q (pull)", h.Workload, h.Direction, workload)
			return
		}
		if refuse != "" {
			done <- c.SendError(refuse)
			return
		}
		if err := c.SendFiles(files); err != nil {
			done <- err
			return
		}
		done <- c.ReadAck()
	}()
	return done
}

func TestRestoreArena(t *testing.T) {
	tests := []struct {
		name      string
		handoff   bool // luoinit advertises a handoff
		files     func(t *testing.T) ([]handoff.File, map[string]string)
		refuse    string
		wantKeys  int
		wantErr   string // in the error of restoreArena
		wantLog   string
		wantFresh bool
	}{
		{name: "no handoff", wantFresh: true, wantLog: "no handoff (neither LUOINIT_HANDOFF_FD nor LUOINIT_HANDOFF_SOCKET is set): starting with a new arena"},
		{name: "a handoff of no fds", handoff: true, wantFresh: true, wantLog: "the handoff from luoinit brought no fds (a cold boot): starting with a new arena"},
		{name: "the arena", handoff: true, wantKeys: 300, wantLog: "restored the arena from luoinit: 1 MiB, 300 entries",
			files: func(t *testing.T) ([]handoff.File, map[string]string) {
				f, want := filledArena(t, 1<<20, 300)
				return []handoff.File{{Name: "arena", File: f}}, want
			}},
		{name: "the arena and an fd kvcache does not use", handoff: true, wantKeys: 10, wantLog: `also brought fds "log", which kvcache does not use`,
			files: func(t *testing.T) ([]handoff.File, map[string]string) {
				f, want := filledArena(t, 1<<20, 10)
				other, _ := filledArena(t, minArenaSize, 0)
				return []handoff.File{{Name: "log", File: other}, {Name: "arena", File: f}}, want
			}},
		{name: "fds but no arena", handoff: true, wantErr: `the handoff from luoinit brought fds "heap" but no "arena"`,
			files: func(t *testing.T) ([]handoff.File, map[string]string) {
				f, _ := filledArena(t, 1<<20, 10)
				return []handoff.File{{Name: "heap", File: f}}, nil
			}},
		{name: "a damaged arena", handoff: true, wantErr: fmt.Sprintf("restoring the arena luoinit handed over: arena corrupt at offset %d", dataStart),
			files: func(t *testing.T) ([]handoff.File, map[string]string) {
				f, _ := filledArena(t, 1<<20, 10)
				if _, err := f.WriteAt([]byte{0xff}, dataStart+2); err != nil { // the first record's checksum
					t.Fatal(err)
				}
				return []handoff.File{{Name: "arena", File: f}}, nil
			}},
		{name: "an empty memfd", handoff: true, wantErr: "arena corrupt at offset 0 (0x0): the arena file",
			files: func(t *testing.T) ([]handoff.File, map[string]string) {
				fd, err := unix.MemfdCreate("empty", unix.MFD_CLOEXEC)
				if err != nil {
					t.Fatal(err)
				}
				f := os.NewFile(uintptr(fd), "empty")
				t.Cleanup(func() { f.Close() })
				return []handoff.File{{Name: "arena", File: f}}, nil
			}},
		{name: "luoinit refuses", handoff: true, refuse: "no fds kept for this workload",
			wantErr: "receiving the arena from luoinit: handoff: workload \"kvtest\": receiving fds from luoinit: peer sent ERROR: no fds kept for this workload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var files []handoff.File
			var want map[string]string
			if tt.files != nil {
				files, want = tt.files(t)
			}
			var acked <-chan error
			if tt.handoff {
				acked = offerHandoff(t, "kvtest", files, tt.refuse)
			} else {
				t.Setenv(wellknown.EnvHandoffFD, "")
				t.Setenv(wellknown.EnvHandoffSocket, "")
			}
			var logs bytes.Buffer
			st, arena, err := restoreArena("kvtest", 1<<20, 5*time.Second, log.New(&logs, "", 0))
			if acked != nil {
				if err := <-acked; err != nil {
					t.Errorf("luoinit's side of the handoff: %v", err)
				}
			}
			if os.Getenv(wellknown.EnvHandoffFD) != "" {
				t.Errorf("%s still set after the handoff", wellknown.EnvHandoffFD)
			}
			if tt.wantErr != "" {
				if err == nil {
					st.Close()
					arena.Close()
					t.Fatalf("restored; want an error with %q", tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %q\nwant one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer arena.Close()
			defer st.Close()
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log %q\nwant %q", logs.String(), tt.wantLog)
			}
			s := st.Stats()
			if tt.wantFresh {
				if s != (Stats{Size: 1 << 20, Used: dataStart}) {
					t.Fatalf("stats %+v, want a new, empty arena", s)
				}
				return
			}
			if s.Entries != tt.wantKeys || !s.Restored || s.Generation != 1 {
				t.Fatalf("stats %+v, want %d entries, restored, generation 1", s, tt.wantKeys)
			}
			if got := contents(t, st); !maps.Equal(got, want) {
				t.Fatalf("restored contents differ: %s", diffKeys(got, want))
			}
			// The restored store is in the very memory luoinit handed over.
			if err := st.Set("after", "restore"); err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				if f.Name != "arena" {
					continue
				}
				mem := make([]byte, s.Size)
				if _, err := f.File.ReadAt(mem, 0); err != nil {
					t.Fatal(err)
				}
				again, err := OpenArena(mem)
				if err != nil {
					t.Fatal(err)
				}
				if v, ok := again.Get("after"); !ok || v != "restore" || again.Stats().Generation != 2 {
					t.Fatalf("luoinit's copy of the arena: after=%q %v, generation %d", v, ok, again.Stats().Generation)
				}
			}
		})
	}
}

// acceptPush does what luoinit prepare does with a push: it accepts one
// connection on l, checks the HELLO and receives the fds; then it answers
// with ack (nil: ok) naming ackFD, or with ERROR refuse instead of receiving, or with
// nothing at all if silent.
type pushResult struct {
	files []handoff.File
	err   error
}

func acceptPush(l *handoff.Listener, workload string, ackFD string, ack error, refuse string, silent bool) <-chan pushResult {
	done := make(chan pushResult, 1)
	go func() {
		l.SetDeadline(time.Now().Add(10 * time.Second))
		c, err := l.Accept()
		if err != nil {
			done <- pushResult{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		h, err := c.ReadHello()
		if err != nil {
			done <- pushResult{err: err}
			return
		}
		if h.Workload != workload || h.Direction != handoff.DirectionPush {
			done <- pushResult{err: fmt.Errorf("HELLO for %q (%v), want %q (push)", h.Workload, h.Direction, workload)}
			return
		}
		if refuse != "" {
			done <- pushResult{err: c.SendError(refuse)}
			return
		}
		files, err := c.ReceiveFiles()
		if err != nil {
			done <- pushResult{err: err}
			return
		}
		if silent {
			for _, f := range files {
				f.File.Close()
			}
			c.ReadAck() // returns when the pusher gives up and closes
			done <- pushResult{}
			return
		}
		done <- pushResult{files: files, err: c.SendAck(ackFD, ack)}
	}()
	return done
}

func TestPushArena(t *testing.T) {
	tests := []struct {
		name    string
		listen  bool
		ackFD   string
		ack     error
		refuse  string
		silent  bool
		wantErr string
	}{
		{name: "luoinit keeps it", listen: true},
		{name: "luoinit cannot preserve it", listen: true, ackFD: "arena", ack: errors.New("preserve fd: EOPNOTSUPP"),
			wantErr: `handoff: workload "kvtest": pushing fds to luoinit: peer rejected fd "arena": preserve fd: EOPNOTSUPP`},
		{name: "luoinit does not know the workload", listen: true, refuse: `unknown workload "kvtest"`,
			wantErr: `peer sent ERROR: unknown workload "kvtest"`},
		{name: "luoinit does not answer", listen: true, silent: true, wantErr: "timeout after"},
		{name: "nobody listens", wantErr: "connecting to "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "prepare.sock")
			var pushed <-chan pushResult
			if tt.listen {
				l, err := handoff.Listen(sock)
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				pushed = acceptPush(l, "kvtest", tt.ackFD, tt.ack, tt.refuse, tt.silent)
			}
			arena, want := filledArena(t, 1<<20, 200)
			err := pushArena(arena, sock, "kvtest", 300*time.Millisecond)
			var res pushResult
			if pushed != nil {
				res = <-pushed
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("push: %v\nwant an error with %q", err, tt.wantErr)
				}
				for _, f := range res.files {
					f.File.Close()
				}
				return
			}
			if err != nil || res.err != nil {
				t.Fatalf("push: %v; luoinit's side: %v", err, res.err)
			}
			if len(res.files) != 1 || res.files[0].Name != "arena" {
				t.Fatalf("luoinit got %d fds: %v", len(res.files), res.files)
			}
			got := res.files[0].File
			defer got.Close()
			// The same memfd, not a copy, with the same bytes.
			var a, b unix.Stat_t
			if err := unix.Fstat(int(arena.Fd()), &a); err != nil {
				t.Fatal(err)
			}
			if err := unix.Fstat(int(got.Fd()), &b); err != nil {
				t.Fatal(err)
			}
			if a.Dev != b.Dev || a.Ino != b.Ino || b.Size != 1<<20 {
				t.Fatalf("luoinit got inode %d (%d bytes), kvcache pushed inode %d", b.Ino, b.Size, a.Ino)
			}
			sent, err := io.ReadAll(io.NewSectionReader(arena, 0, 1<<20))
			if err != nil {
				t.Fatal(err)
			}
			received, err := io.ReadAll(io.NewSectionReader(got, 0, 1<<20))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(sent, received) {
				t.Fatal("luoinit's arena differs from kvcache's")
			}
			st, err := OpenArena(received)
			if err != nil {
				t.Fatal(err)
			}
			if c := contents(t, st); !maps.Equal(c, want) {
				t.Fatalf("the pushed arena holds: %s", diffKeys(c, want))
			}
		})
	}
}

// TestPushRequest pushes with the PUSH request of a running server: the
// writes after the push land in the memfd luoinit keeps.
func TestPushRequest(t *testing.T) {
	prep := filepath.Join(t.TempDir(), "prepare.sock")
	l, err := handoff.Listen(prep)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ts := startServer(t, 1<<20, prep)
	rc := dialRaw(t, ts.sock)
	rc.write("SET before push\n")
	if a := rc.answer(); a != "OK" {
		t.Fatal(a)
	}
	pushed := acceptPush(l, "kvtest", "", nil, "", false)
	rc.write("PUSH\n")
	if a, want := rc.answer(), fmt.Sprintf("OK pushed \"arena\" to %s as workload \"kvtest\"", prep); a != want {
		t.Fatalf("PUSH: %q, want %q", a, want)
	}
	res := <-pushed
	if res.err != nil || len(res.files) != 1 {
		t.Fatalf("luoinit's side: %v, %d fds", res.err, len(res.files))
	}
	kept := res.files[0].File
	defer kept.Close()
	rc.write("SET after push\n")
	if a := rc.answer(); a != "OK" {
		t.Fatal(a)
	}
	if want := `push (PUSH request): handed "arena" (1 MiB, 1 entries, 150 bytes used) to luoinit prepare at ` + prep + ` as workload "kvtest"`; !strings.Contains(ts.logs.String(), want) {
		t.Errorf("log %q\nwant %q", ts.logs.String(), want)
	}
	ts.srv.shutdown(time.Second)
	if !strings.Contains(ts.logs.String(), "stopped with 2 entries; the arena was pushed to luoinit prepare at ") {
		t.Errorf("log %q: no word of the push at the stop", ts.logs.String())
	}
	// kvcache is gone; luoinit's reference holds everything.
	mem, err := io.ReadAll(io.NewSectionReader(kept, 0, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	st, err := OpenArena(mem)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := contents(t, st), map[string]string{"before": "push", "after": "push"}; !maps.Equal(got, want) {
		t.Fatalf("the kept arena holds %v, want %v", got, want)
	}
}

// kvcacheProc is this test binary run as kvcache.
type kvcacheProc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan struct{}
	err    error
}

// startKvcache runs kvcache with args; handoffEnd, if not nil, is the
// handoff socket it inherits as fd 3, advertised in LUOINIT_HANDOFF_FD.
func startKvcache(t *testing.T, handoffEnd *os.File, args ...string) *kvcacheProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "LUOINIT_") && !strings.HasPrefix(e, runMainEnv+"=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(cmd.Env, runMainEnv+"=1")
	if handoffEnd != nil {
		cmd.ExtraFiles = []*os.File{handoffEnd}
		cmd.Env = append(cmd.Env, wellknown.EnvHandoffFD+"=3")
	}
	p := &kvcacheProc{cmd: cmd, stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("kvcache %q (pid %d) said:\n%s", args, cmd.Process.Pid, p.stderr)
		}
	})
	return p
}

// waitServing waits until p accepts connections on sock.
func (p *kvcacheProc) waitServing(t *testing.T, sock string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return
		}
		select {
		case <-p.exited:
			t.Fatalf("kvcache exited before serving: %v\n%s", p.err, p.stderr)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("kvcache does not serve %s after 10s", sock)
		}
	}
}

// stop sends sig and returns the exit status.
func (p *kvcacheProc) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(within):
		t.Fatalf("kvcache still runs after %v", within)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

func client(t *testing.T, sock string, args ...string) string {
	t.Helper()
	code, out, errOut := runCmd(append([]string{"client", "--socket", sock}, args...)...)
	if code != 0 {
		t.Fatalf("kvcache client %q: status %d, %q, %q", args, code, out, errOut)
	}
	return strings.TrimSuffix(out, "\n")
}

// TestLiveUpdate runs kvcache twice, as around a kexec: the first one
// fills its arena and pushes it to a fake luoinit prepare on SIGUSR1; the
// second gets it back through LUOINIT_HANDOFF_FD and serves every key.
func TestLiveUpdate(t *testing.T) {
	dir := t.TempDir()
	prep := filepath.Join(dir, "prepare.sock")
	l, err := handoff.Listen(prep)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	common := []string{"--name", "kvtest", "--prepare-socket", prep, "--arena-size", "4MiB", "--timeout", "5s"}

	// Before the kexec: a cold start, a fill, a push on SIGUSR1, SIGTERM.
	sock1 := filepath.Join(dir, "kv1.sock")
	first := startKvcache(t, nil, append([]string{"--listen", sock1}, common...)...)
	first.waitServing(t, sock1)
	const n = 3000
	if out := client(t, sock1, "fill", strconv.Itoa(n)); out != fmt.Sprintf("filled %d keys", n) {
		t.Fatal(out)
	}
	pushed := acceptPush(l, "kvtest", "", nil, "", false)
	first.cmd.Process.Signal(syscall.SIGUSR1)
	res := <-pushed
	if res.err != nil || len(res.files) != 1 || res.files[0].Name != "arena" {
		t.Fatalf("push on SIGUSR1: %v, %v", res.err, res.files)
	}
	kept := res.files[0].File // what luoinit preserves across the kexec
	defer kept.Close()
	client(t, sock1, "SET", "late", "write") // after the push, before the stop
	first.cmd.Process.Signal(syscall.SIGTERM)
	if code := first.wait(t, 5*time.Second); code != 0 {
		t.Fatalf("kvcache exited with status %d on SIGTERM", code)
	}
	for _, want := range []string{
		"no handoff", `push (SIGUSR1): handed "arena" (4 MiB, 3000 entries`, "terminated: stopping",
		"stopped with 3001 entries; the arena was pushed to luoinit prepare",
	} {
		if !strings.Contains(first.stderr.String(), want) {
			t.Errorf("the first kvcache did not log %q", want)
		}
	}

	// After the kexec: luoinit starts kvcache with the handoff socket.
	sock2 := filepath.Join(dir, "kv2.sock")
	initEnd, childEnd, err := handoff.Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	second := startKvcache(t, childEnd, append([]string{"--listen", sock2}, common...)...)
	childEnd.Close()
	if err := <-serveHandoff(initEnd, "kvtest", []handoff.File{{Name: "arena", File: kept}}, ""); err != nil {
		t.Fatalf("handoff to the second kvcache: %v", err)
	}
	kept.Close() // luoinit closes its copy after the ACK
	second.waitServing(t, sock2)
	if out := client(t, sock2, "verify", strconv.Itoa(n)); out != fmt.Sprintf("verified %d keys", n) {
		t.Fatal(out)
	}
	if out := client(t, sock2, "GET", "late"); out != "VALUE write" {
		t.Fatalf("the write after the push: %q", out)
	}
	if out := client(t, sock2, "STATS"); !strings.HasPrefix(out, "STATS entries=3001 ") || !strings.HasSuffix(out, " size=4194304 restored=true generation=1") {
		t.Fatalf("STATS after the update: %q", out)
	}
	second.cmd.Process.Signal(syscall.SIGTERM)
	if code := second.wait(t, 5*time.Second); code != 0 {
		t.Fatalf("the second kvcache exited with status %d on SIGTERM", code)
	}
	if want := "restored the arena from luoinit: 4 MiB, 3001 entries"; !strings.Contains(second.stderr.String(), want) {
		t.Errorf("the second kvcache did not log %q", want)
	}
}

// TestLiveUpdateDamagedArena: a kvcache handed a damaged arena says where
// and exits 1 without serving.
func TestLiveUpdateDamagedArena(t *testing.T) {
	dir := t.TempDir()
	arena, _ := filledArena(t, 1<<20, 50)
	off := int64(dataStart) // of the record of key-00005
	for i := range 5 {
		off += int64(recordHdrSize + len(keyName(i)) + len(valueFor(keyName(i))))
	}
	if _, err := arena.WriteAt([]byte("garbage"), off+recordHdrSize+3); err != nil {
		t.Fatal(err)
	}
	initEnd, childEnd, err := handoff.Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "kv.sock")
	p := startKvcache(t, childEnd, "--listen", sock, "--name", "kvtest")
	childEnd.Close()
	if err := <-serveHandoff(initEnd, "kvtest", []handoff.File{{Name: "arena", File: arena}}, ""); err != nil {
		t.Fatalf("handoff: %v", err)
	}
	if code := p.wait(t, 10*time.Second); code != 1 {
		t.Fatalf("status %d, want 1", code)
	}
	logs := p.stderr.String()
	want := fmt.Sprintf("restoring the arena luoinit handed over: arena corrupt at offset %d (%#x): record checksum mismatch", off, off)
	if !strings.Contains(logs, want) ||
		!strings.Contains(logs, "exiting with status 1") {
		t.Fatalf("log %q", logs)
	}
	if _, err := os.Stat(sock); err == nil {
		t.Fatal("kvcache made its socket though it had no valid arena")
	}
}
