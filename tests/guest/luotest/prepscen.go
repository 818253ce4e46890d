package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/luoinit/luoinit/carry"
	"github.com/luoinit/luoinit/kcmdline"
	"github.com/luoinit/luoinit/luo"
	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/tests/vm"
	"github.com/luoinit/luoinit/tests/vm/guest"
	"golang.org/x/sys/unix"
)

// The prepare scenarios run the real `luoinit prepare` (at /bin/luoinit in
// the first initramfs) against test workloads started from this binary.

const (
	luoinitBin  = "/bin/luoinit"
	configPath  = "/tmp/luoinit.toml"
	holderPID   = "/run/holder.pid"
	kvArena     = 16 << 20
	kvIndex     = 4096
	holderSize  = 1 << 20
	kvSeedA     = 11
	kvSeedI     = 12
	holderSeed  = 13
	kvMemfds    = "arena:16777216:11,index:4096:12"
	holderSpecs = "data:1048576:13"
)

// expected pattern of each fd, by workload/fd name.
var expected = map[string]memSpec{
	"kv/arena":    {"arena", kvArena, kvSeedA},
	"kv/index":    {"index", kvIndex, kvSeedI},
	"holder/data": {"data", holderSize, holderSeed},
}

const baseConfig = `version = 1

[[workload]]
name = "kv"
argv = ["/init", "workload", "push", "--name", "kv"]
handoff = "socket"

  [[workload.fd]]
  name = "arena"

  [[workload.fd]]
  name = "index"
%s
[[workload]]
name = "holder"
argv = ["/init", "workload", "hold", "--name", "holder"]
handoff = "pidfd"
pidfile = "/run/holder.pid"
stop = "term"
stop_timeout = "2s"

  [[workload.fd]]
  name = "data"
  number = 10
`

func writeConfig(extraKVFD string) error {
	return writeConfigText(fmt.Sprintf(baseConfig, extraKVFD))
}

// sessionsNamed are the sessions of every workload of every config written
// in this boot (writeConfigText): the fault campaign checks that none of
// them is left behind.
var sessionsNamed = map[string]bool{}

// writeConfigText writes text as the scenario's config and notes its
// workloads' session names.
func writeConfigText(text string) error {
	cfg, err := manifest.ParseConfig([]byte(text))
	if err != nil {
		return err
	}
	for _, w := range cfg.Workloads {
		sessionsNamed[manifest.SessionName(w.Name)] = true
	}
	return os.WriteFile(configPath, []byte(text), 0o644)
}

type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func start(name string, args ...string) (*proc, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stdout
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) state() byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return s[i+2]
}

func startWorkloads(pipe string) (kv, holder *proc, err error) {
	os.Remove(holderPID)
	args := []string{"workload", "push", "--name", "kv", "--memfds", kvMemfds}
	if pipe != "" {
		args = append(args, "--pipe", pipe)
	}
	if kv, err = start("/init", args...); err != nil {
		return nil, nil, err
	}
	if holder, err = start("/init", "workload", "hold", "--name", "holder", "--memfds", holderSpecs, "--fd", "10", "--pidfile", holderPID); err != nil {
		return nil, nil, err
	}
	for i := 0; i < 400; i++ {
		if _, err := os.Stat(holderPID); err == nil {
			return kv, holder, nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return nil, nil, errors.New("holder workload wrote no pidfile")
}

// runPrepare runs luoinit prepare, its stderr shown on the console and
// kept, and waits for it (only returns if prepare returned).
func runPrepare(args ...string) (string, int, error) {
	var buf syncBuffer
	cmd := exec.Command(luoinitBin, append([]string{"prepare"}, args...)...)
	cmd.Stdout = io.MultiWriter(os.Stdout, &buf)
	cmd.Stderr = io.MultiWriter(os.Stdout, &buf)
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code, err = ee.ExitCode(), nil
	}
	return buf.String(), code, err
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func prepareBefore() error {
	os.MkdirAll("/run/luoinit", 0o755)
	if err := writeConfig(""); err != nil {
		return err
	}
	if _, _, err := startWorkloads(""); err != nil {
		return err
	}
	guest.Info("starting luoinit prepare at %v boot time", guest.BootTime())
	out, code, err := runPrepare("--config", configPath, "--kernel", vm.GuestKernel,
		"--initrd", vm.GuestInitramfs2, "--reuse-cmdline", "--append", "luotest.stage=2")
	return fmt.Errorf("luoinit prepare returned (exit %d, %v) instead of rebooting: %s", code, err, lastLines(out, 5))
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " | ")
}

func prepareAfter() error {
	start := guest.BootTime()
	cmdline, _ := os.ReadFile("/proc/cmdline")
	if v, ok := kcmdline.Last(string(cmdline), carry.UpdateParam); !ok || v != "1" {
		return fmt.Errorf("the command line %q lacks %s=1", cmdline, carry.UpdateParam)
	}
	dev, err := luo.Open(luo.DefaultPath)
	if err != nil {
		return err
	}
	defer dev.Close()
	// The manifest comes from luoinit's own session, sealed.
	rs, err := dev.RetrieveSession(carry.Session)
	if err != nil {
		return fmt.Errorf("luoinit's own session: %w", err)
	}
	mf, err := rs.RetrieveFD(carry.ManifestToken)
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	data, err := carry.ReadSealed(mf, manifest.MaxFileSize)
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	m, err := manifest.Parse(data)
	if err != nil {
		return err
	}
	if m.Generation != 1 {
		return fmt.Errorf("generation %d, want 1", m.Generation)
	}
	guest.Info("manifest (sealed, %d bytes, from session %q token %d): generation %d, written %v by kernel %s, %d workloads",
		len(data), carry.Session, carry.ManifestToken, m.Generation, m.Written, m.KernelRelease, len(m.Workloads))
	if _, err := os.Stat("/etc/luoinit/manifest.toml"); err == nil {
		return fmt.Errorf("a manifest sits in the initramfs at /etc/luoinit/manifest.toml")
	}
	var sessions []*luo.Session
	count := 0
	for _, w := range m.Workloads {
		s, err := dev.RetrieveSession(w.FDSession)
		if err != nil {
			return fmt.Errorf("workload %q: %w", w.Name, err)
		}
		sessions = append(sessions, s)
		for _, fd := range w.FDs {
			if fd.Dropped {
				return fmt.Errorf("workload %q fd %q dropped: %s", w.Name, fd.Name, fd.DropReason)
			}
			f, err := s.RetrieveFD(fd.Token)
			if err != nil {
				return fmt.Errorf("workload %q fd %q: %w", w.Name, fd.Name, err)
			}
			exp, ok := expected[w.Name+"/"+fd.Name]
			if !ok {
				return fmt.Errorf("unexpected fd %s/%s in the manifest", w.Name, fd.Name)
			}
			if err := checkPattern(f, exp.size, exp.seed); err != nil {
				return fmt.Errorf("workload %q fd %q token %d: %w", w.Name, fd.Name, fd.Token, err)
			}
			guest.Info("workload %q fd %q (%s, %d bytes) retrieved by token %d from session %q and verified", w.Name, fd.Name, fd.Kind, exp.size, fd.Token, w.FDSession)
			count++
			f.Close()
		}
		if err := s.Finish(); err != nil {
			return err
		}
	}
	if count != len(expected) {
		return fmt.Errorf("verified %d fds, want %d", count, len(expected))
	}
	rf, err := rs.RetrieveFD(carry.RecordToken)
	if err != nil {
		return fmt.Errorf("freeze record: %w", err)
	}
	raw, err := io.ReadAll(io.NewSectionReader(rf, 0, manifest.RecordSize))
	if err != nil {
		return err
	}
	rec, err := manifest.ParseRecord(raw)
	if err != nil {
		return err
	}
	rs.Finish()
	t := m.Timing
	t.FirstStopped, t.Reboot = rec.FirstStopped, rec.Reboot
	if !(t.PrepareStart.MonotonicNS > 0 && t.PrepareStart.MonotonicNS <= t.Preserved.MonotonicNS &&
		t.Preserved.MonotonicNS <= t.FirstStopped.MonotonicNS && t.FirstStopped.MonotonicNS <= t.Reboot.MonotonicNS) {
		return fmt.Errorf("timestamps out of order: %+v", t)
	}
	guest.Info("old kernel: preserve %v, prepared to freeze %v, freeze (first stop to reboot call) %v",
		time.Duration(t.Preserved.MonotonicNS-t.PrepareStart.MonotonicNS).Round(time.Millisecond),
		time.Duration(t.FirstStopped.MonotonicNS-t.Preserved.MonotonicNS).Round(time.Millisecond),
		t.Blackout().Round(time.Microsecond))
	guest.Pass("%d fds from 2 workloads (socket push and pidfd_getfd) came through luoinit prepare and the kexec; restore took %v",
		count, (guest.BootTime() - start).Round(time.Millisecond))
	_ = unix.Getpid
	return nil
}

// cancelScenario: a --no-reboot prepare cancelled with SIGTERM leaves
// nothing preserved or loaded, and the workloads running; a second
// prepare reusing the same session names then succeeds.
func cancelScenario() error {
	os.MkdirAll("/run/luoinit", 0o755)
	if err := writeConfig(""); err != nil {
		return err
	}
	kv, holder, err := startWorkloads("")
	if err != nil {
		return err
	}
	var buf syncBuffer
	cmd := exec.Command(luoinitBin, "prepare", "--config", configPath, "--kernel", vm.GuestKernel,
		"--initrd", vm.GuestInitramfs2, "--no-reboot")
	cmd.Stdout = io.MultiWriter(os.Stdout, &buf)
	cmd.Stderr = io.MultiWriter(os.Stdout, &buf)
	if err := cmd.Start(); err != nil {
		return err
	}
	for i := 0; !strings.Contains(buf.String(), "holding the sessions"); i++ {
		if i > 1200 {
			cmd.Process.Kill()
			return fmt.Errorf("prepare --no-reboot never reached prepared: %s", lastLines(buf.String(), 5))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if b, _ := os.ReadFile("/sys/kernel/kexec_loaded"); strings.TrimSpace(string(b)) != "1" {
		return fmt.Errorf("prepared, but /sys/kernel/kexec_loaded is %q", b)
	}
	cmd.Process.Signal(unix.SIGTERM)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		return fmt.Errorf("cancelled prepare: %v, want exit status 1", err)
	}
	out := buf.String()
	for _, want := range []string{"cancelled", "sessions closed", "kexec image unloaded"} {
		if !strings.Contains(out, want) {
			return fmt.Errorf("cancelled prepare did not say %q: %s", want, lastLines(out, 3))
		}
	}
	if b, _ := os.ReadFile("/sys/kernel/kexec_loaded"); strings.TrimSpace(string(b)) != "0" {
		return fmt.Errorf("after cancel /sys/kernel/kexec_loaded is %q, want 0", b)
	}
	for _, p := range []*proc{kv, holder} {
		if st := p.state(); st != 'S' && st != 'R' {
			return fmt.Errorf("workload pid %d is in state %q after cancel, want running", p.cmd.Process.Pid, st)
		}
	}
	guest.Info("cancel: exit 1, sessions closed, kexec unloaded, workloads still running")
	// The kv workload pushed once and waits; start fresh ones for the
	// second prepare, which creates the same session names again.
	for _, p := range []*proc{kv, holder} {
		p.cmd.Process.Signal(unix.SIGTERM)
		<-p.done
	}
	if _, _, err := startWorkloads(""); err != nil {
		return err
	}
	out, code, err := runPrepare("--config", configPath, "--kernel", vm.GuestKernel, "--initrd", vm.GuestInitramfs2, "--dry-run")
	if err != nil || code != 0 {
		return fmt.Errorf("second prepare (dry run) after cancel: exit %d, %v: %s", code, err, lastLines(out, 5))
	}
	if !strings.Contains(out, `session = "luoinit.kv"`) {
		return fmt.Errorf("dry run did not print the manifest with session luoinit.kv: %s", lastLines(out, 5))
	}
	guest.Pass("cancel left nothing preserved: a second prepare created the same sessions and succeeded")
	return nil
}

// refusedScenario: a pipe that LUO refuses fails prepare before anything
// is frozen, naming workload, fd and errno; marked optional it is dropped
// and recorded.
func refusedScenario() error {
	os.MkdirAll("/run/luoinit", 0o755)
	const pipeFD = "\n  [[workload.fd]]\n  name = \"events\"\n"
	if err := writeConfig(pipeFD); err != nil {
		return err
	}
	kv, holder, err := startWorkloads("events")
	if err != nil {
		return err
	}
	out, code, err := runPrepare("--config", configPath, "--kernel", vm.GuestKernel, "--initrd", vm.GuestInitramfs2)
	if err != nil {
		return err
	}
	if code != 1 {
		return fmt.Errorf("prepare with a refused pipe: exit %d, want 1: %s", code, lastLines(out, 3))
	}
	for _, want := range []string{`workload "kv"`, `fd "events"`, "pipe", "ENOENT", "sessions closed"} {
		if !strings.Contains(out, want) {
			return fmt.Errorf("refused prepare's error does not mention %q: %s", want, lastLines(out, 3))
		}
	}
	if strings.Contains(out, "phase frozen") {
		return fmt.Errorf("prepare reached phase frozen despite the refused fd")
	}
	for _, p := range []*proc{kv, holder} {
		if st := p.state(); st != 'S' && st != 'R' {
			return fmt.Errorf("workload pid %d is in state %q after the refused prepare, want running", p.cmd.Process.Pid, st)
		}
	}
	guest.Info("refused: exit 1 with the kernel's errno, nothing frozen, workloads running")
	for _, p := range []*proc{kv, holder} {
		p.cmd.Process.Signal(unix.SIGTERM)
		<-p.done
	}
	if err := writeConfig(pipeFD + "  optional = true\n"); err != nil {
		return err
	}
	if _, _, err := startWorkloads("events"); err != nil {
		return err
	}
	out, code, err = runPrepare("--config", configPath, "--kernel", vm.GuestKernel, "--initrd", vm.GuestInitramfs2, "--dry-run")
	if err != nil || code != 0 {
		return fmt.Errorf("dry run with the pipe optional: exit %d, %v: %s", code, err, lastLines(out, 5))
	}
	if !strings.Contains(out, "dropped = true") || !strings.Contains(out, "ENOENT") {
		return fmt.Errorf("the optional pipe is not recorded as dropped with its errno: %s", lastLines(out, 12))
	}
	guest.Pass("refused pipe failed prepare with workload, fd and errno named; as optional it was dropped and recorded")
	return nil
}
