package handoff

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/luoinit/luoinit/wellknown"
	"golang.org/x/sys/unix"
)

// The C client of docs/handoff.md, examples/c/luoinit_handoff.c, is built
// here and run against this package: the docs a C author works from
// cannot rot.

const cSource = "../examples/c/luoinit_handoff.c"

var (
	cOnce sync.Once
	cBin  string
	cErr  error
)

// cClient builds the C client once (gcc -static, as every C program that
// may go into an initramfs) and returns its path.
func cClient(t *testing.T) string {
	t.Helper()
	cOnce.Do(func() {
		dir, err := os.MkdirTemp("", "luoinit-c")
		if err != nil {
			cErr = err
			return
		}
		cBin = filepath.Join(dir, "luoinit_handoff")
		out, err := exec.Command("gcc", "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o", cBin, cSource).CombinedOutput()
		if err != nil {
			cErr = &exec.Error{Name: "gcc " + cSource + ":\n" + string(out), Err: err}
		}
	})
	if cErr != nil {
		t.Fatalf("building the C client (gcc and libc6-dev come with tests/deps.sh): %v", cErr)
	}
	return cBin
}

// docsCSection is the section of docs/handoff.md that presents the C client.
const docsCSection = "## A client in C\n"

// cSection returns that section of docs/handoff.md, up to the next one.
func cSection(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile("../docs/handoff.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(doc), docsCSection)
	if !ok {
		t.Fatalf("docs/handoff.md has no section %q", strings.TrimSpace(docsCSection))
	}
	if end := strings.Index(sec, "\n## "); end >= 0 {
		sec = sec[:end]
	}
	return sec
}

var (
	mdLink     = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	namedFunc  = regexp.MustCompile("`([A-Za-z_][A-Za-z0-9_]*)\\(\\)`")
	cCodeBlock = regexp.MustCompile("(?s)```c\n(.*?)```\n")
)

// TestDocsLinkTheCClient checks that docs/handoff.md links the C client
// and names only functions it defines.
func TestDocsLinkTheCClient(t *testing.T) {
	sec := cSection(t)
	src, err := os.ReadFile(cSource)
	if err != nil {
		t.Fatal(err)
	}
	linked := false
	for _, m := range mdLink.FindAllStringSubmatch(sec, -1) {
		target, _, _ := strings.Cut(m[1], "#")
		if strings.Contains(target, "://") || (!strings.HasSuffix(target, ".c") && !strings.HasSuffix(target, ".h")) {
			continue
		}
		path := filepath.Join("../docs", target)
		if _, err := os.Stat(path); err != nil {
			t.Errorf("docs/handoff.md links %s, which does not exist: %v", target, err)
		}
		linked = linked || filepath.Clean(path) == filepath.Clean(cSource)
	}
	if !linked {
		t.Errorf("docs/handoff.md (%s) does not link %s", strings.TrimSpace(docsCSection), strings.TrimPrefix(cSource, "../"))
	}
	for _, m := range namedFunc.FindAllStringSubmatch(sec, -1) {
		def := regexp.MustCompile(`(?m)^[A-Za-z_][A-Za-z0-9_ \t*]*[ \t*]` + m[1] + `\(`)
		if !def.Match(src) {
			t.Errorf("docs/handoff.md names %s, which %s does not define", m[0], strings.TrimPrefix(cSource, "../"))
		}
	}
}

// TestDocsCExampleBuilds compiles the example of docs/handoff.md that
// includes the C client.
func TestDocsCExampleBuilds(t *testing.T) {
	blocks := cCodeBlock.FindAllStringSubmatch(cSection(t), -1)
	if len(blocks) == 0 {
		t.Skip("docs/handoff.md shows no C example of the client")
	}
	for i, b := range blocks {
		file := filepath.Join(t.TempDir(), fmt.Sprintf("example%d.c", i))
		if err := os.WriteFile(file, []byte(b[1]), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("gcc", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-I", filepath.Dir(cSource), file).CombinedOutput()
		if err != nil {
			t.Errorf("the C example %d of docs/handoff.md does not build (%v):\n%s", i+1, err, out)
		}
	}
}

type cRun struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan error
}

func startC(t *testing.T, extra []*os.File, env []string, args ...string) *cRun {
	t.Helper()
	r := &cRun{cmd: exec.Command(cClient(t), args...), done: make(chan error, 1)}
	r.cmd.ExtraFiles = extra
	r.cmd.Env = env
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() { r.cmd.Process.Kill(); <-r.done })
	return r
}

// wait returns the exit code within 10 s.
func (r *cRun) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-r.done:
		r.done <- nil // for the cleanup
		return r.cmd.ProcessState.ExitCode()
	case <-time.After(10 * time.Second):
		t.Fatalf("the C client did not end; stderr:\n%s", r.stderr.String())
	}
	return -1
}

func readAll(t *testing.T, f *os.File) string {
	t.Helper()
	b := make([]byte, 4096)
	n, _ := f.ReadAt(b, 0)
	return string(b[:n])
}

func TestCPush(t *testing.T) {
	for _, tc := range []struct {
		desc        string
		listenAfter time.Duration // the C client starts before prepare listens
		answer      func(c *Conn, files []File) error
		exit        int
		want        string
	}{
		{"ok", 0, func(c *Conn, _ []File) error { return c.SendAck("", nil) }, 0, "pushed 3 fds"},
		{"before the socket exists", 700 * time.Millisecond, func(c *Conn, _ []File) error { return c.SendAck("", nil) }, 0, "pushed 3 fds"},
		{"refused", 0, func(c *Conn, _ []File) error {
			return c.SendAck("heap", unix.EBUSY)
		}, 1, `luoinit refused fd "heap": device or resource busy`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "prepare.sock")
			r := startC(t, nil, nil, "push", path, "kv", "heap=hello", "idx=world", "empty=")
			time.Sleep(tc.listenAfter)
			l, err := Listen(path)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			l.SetDeadline(time.Now().Add(5 * time.Second))
			c, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if cred, err := c.Peer(); err != nil || cred.PID != r.cmd.Process.Pid {
				t.Errorf("peer %+v (%v), want pid %d", cred, err, r.cmd.Process.Pid)
			}
			h, err := c.ReadHello()
			if err != nil || h.Workload != "kv" || h.Direction != DirectionPush {
				t.Fatalf("HELLO %+v, %v", h, err)
			}
			files, err := c.ReceiveFiles()
			if err != nil {
				t.Fatal(err)
			}
			defer closeAll(files)
			got := map[string]string{}
			for _, f := range files {
				got[f.Name] = readAll(t, f.File)
			}
			if len(files) != 3 || got["heap"] != "hello" || got["idx"] != "world" || got["empty"] != "" {
				t.Errorf("received %v", got)
			}
			if err := tc.answer(c, files); err != nil {
				t.Fatal(err)
			}
			if code := r.wait(t); code != tc.exit || !strings.Contains(r.stdout.String()+r.stderr.String(), tc.want) {
				t.Errorf("exit %d, want %d with %q; stdout %q stderr %q", code, tc.exit, tc.want, r.stdout.String(), r.stderr.String())
			}
		})
	}
}

// Pushing more than one batch: FDS messages of 64 fds at most.
func TestCPushBatches(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prepare.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	args := []string{"push", path, "many"}
	for i := 0; i < 150; i++ {
		args = append(args, "fd"+strings.Repeat("x", i%7)+string(rune('A'+i%26))+string(rune('a'+i/26))+"=v")
	}
	r := startC(t, nil, nil, args...)
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.ReadHello(); err != nil {
		t.Fatal(err)
	}
	files, err := c.ReceiveFiles()
	if err != nil {
		t.Fatal(err)
	}
	closeAll(files)
	if len(files) != 150 {
		t.Errorf("%d files, want 150", len(files))
	}
	c.SendAck("", nil)
	if code := r.wait(t); code != 0 {
		t.Errorf("exit %d: %s", code, r.stderr.String())
	}
}

func TestCPull(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		files map[string]string
		want  string
	}{
		{"two fds", map[string]string{"heap": "hello", "idx": "world"}, "heap=hello\nidx=world\n"},
		{"no fds (a cold boot)", nil, ""},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			defer noLeak(t)()
			c, child, err := Socketpair()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.PassCred(); err != nil {
				t.Fatal(err)
			}
			r := startC(t, []*os.File{child}, []string{wellknown.EnvHandoffFD + "=3"}, "pull", "kv")
			child.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			h, err := c.ReadHello()
			if err != nil || h.Workload != "kv" || h.Direction != DirectionPull {
				t.Fatalf("HELLO %+v, %v", h, err)
			}
			if cred, ok := c.Sender(); !ok || cred.PID != r.cmd.Process.Pid {
				t.Errorf("sender %+v, want pid %d", cred, r.cmd.Process.Pid)
			}
			var files []File
			for _, name := range []string{"heap", "idx"} {
				if text, ok := tc.files[name]; ok {
					files = append(files, File{Name: name, File: memfd(t, name, text)})
				}
			}
			defer closeAll(files)
			if err := c.SendFiles(files); err != nil {
				t.Fatal(err)
			}
			if err := c.ReadAck(); err != nil {
				t.Fatalf("ACK: %v (stderr %s)", err, r.stderr.String())
			}
			if code := r.wait(t); code != 0 || r.stdout.String() != tc.want {
				t.Errorf("exit %d, stdout %q, want %q; stderr %s", code, r.stdout.String(), tc.want, r.stderr.String())
			}
		})
	}
}

// TestCPullMany: the C client takes a handoff of thousands of fds (the
// names checked for repeats as they come), and prints every one.
func TestCPullMany(t *testing.T) {
	const n = 3000
	defer noLeak(t)()
	c, child, err := Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := startC(t, []*os.File{child}, []string{wellknown.EnvHandoffFD + "=3"}, "pull", "kv")
	child.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.ReadHello(); err != nil {
		t.Fatal(err)
	}
	files := make([]File, n)
	var want strings.Builder
	for i := range files {
		name := fmt.Sprintf("f%04d", i)
		files[i] = File{Name: name, File: memfd(t, name, name)}
		fmt.Fprintf(&want, "%s=%s\n", name, name)
	}
	defer closeAll(files)
	if err := c.SendFiles(files); err != nil {
		t.Fatal(err)
	}
	if err := c.ReadAck(); err != nil {
		t.Fatalf("ACK: %v (stderr %s)", err, r.stderr.String())
	}
	if code := r.wait(t); code != 0 || r.stdout.String() != want.String() {
		t.Errorf("exit %d, %d bytes of stdout, want %d; stderr %s", code, r.stdout.Len(), want.Len(), r.stderr.String())
	}
}

// The C client refuses what breaks the protocol with ACK error, and
// starts fresh (exit 3) without LUOINIT_HANDOFF_FD.
func TestCPullRefuses(t *testing.T) {
	victim := memfd(t, "victim", "")
	defer victim.Close()
	for _, tc := range []struct {
		desc string
		msgs []rawMsg
		want string
	}{
		{"repeated name", []rawMsg{{msg(typeFDs, fdsPayload("a", "a")), 2}}, "fd name sent twice"},
		{"repeated across messages", []rawMsg{{msg(typeFDs, fdsPayload("a", "b")), 2}, {msg(typeFDs, fdsPayload("c", "a")), 2}}, "fd name sent twice"},
		{"bad name", []rawMsg{{msg(typeFDs, fdsPayload("a/b")), 1}}, "bad fd name"},
		{"names without fds", []rawMsg{{msg(typeFDs, fdsPayload("a", "b")), 1}}, "number of names differs"},
		{"count lies", []rawMsg{{msg(typeFDs, fdsPayload("a")), 1}, {msg(typeDone, donePayload(2)), 0}}, "count differs"},
		{"empty message", []rawMsg{{nil, 0}}, "bad message"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			raw := fds[0]
			defer unix.Close(raw)
			child := os.NewFile(uintptr(fds[1]), "child end")
			r := startC(t, []*os.File{child}, []string{wellknown.EnvHandoffFD + "=3"}, "pull", "kv")
			child.Close()
			if m, err := readRaw(t, raw); err != nil || m.typ != typeHello {
				t.Fatalf("HELLO: %v %v", m.typ, err)
			}
			for _, m := range tc.msgs {
				var oob []byte
				if m.fds > 0 {
					oob = unix.UnixRights(repeat(int(victim.Fd()), m.fds)...)
				}
				if _, err := unix.SendmsgN(raw, m.b, oob, nil, unix.MSG_NOSIGNAL); err != nil {
					t.Fatal(err)
				}
			}
			m, err := readRaw(t, raw)
			if err != nil || m.typ != typeAck || m.ok || !strings.Contains(m.text, tc.want) {
				t.Errorf("answer %v ok=%v %q (%v), want ACK error with %q", m.typ, m.ok, m.text, err, tc.want)
			}
			if code := r.wait(t); code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
		})
	}
	r := startC(t, nil, nil, "pull", "kv")
	if code := r.wait(t); code != 3 {
		t.Errorf("without %s: exit %d, want 3 (start fresh); stderr %s", wellknown.EnvHandoffFD, code, r.stderr.String())
	}
}
