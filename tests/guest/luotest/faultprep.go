package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/luoinit/luoinit/carry"
	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/luo"
	"github.com/luoinit/luoinit/tests/vm"
	"github.com/luoinit/luoinit/tests/vm/guest"
	"golang.org/x/sys/unix"
)

// The fault campaign of luoinit prepare, in one boot: each fault is made
// to happen, its defined outcome is checked, and then that nothing of it
// stays behind (no kexec image loaded, no LUO session left, the device
// free, the workloads running and not stopped), so that the next fault
// starts clean. Each reports `LUOTEST:FAULT <name> <outcome>`; the host
// test (tests/scenarios/fault_test.go) checks every one was reported.

// prepFault is one fault: run makes it happen and checks its outcome.
type prepFault struct {
	name   string
	run    func() (string, error)
	loaded image
}

// image is whether a kexec image may stay loaded after a fault: a
// SIGKILLed prepare cannot unload the image it loaded.
type image int

const (
	unloaded image = iota // nothing may stay loaded
	loaded                // the image must still be loaded
)

var prepFaults = []prepFault{
	{name: "kill-during-collect", run: killDuringCollect},
	{name: "kill-during-preserve", run: killAt("preserve:kv", "--dry-run")},
	{name: "kill-after-manifest", run: killAt("manifest", "--dry-run")},
	{name: "kill-after-kexec-load", run: killAt("kexec-load", "--no-reboot"), loaded: loaded},
	{name: "replace-stale-image", run: replaceStaleImage},
	{name: "collect-timeout", run: collectTimeout},
	{name: "push-dies-after-connect", run: pushDies("connect")},
	{name: "push-dies-after-hello", run: pushDies("hello")},
	{name: "push-dies-mid-fds", run: pushDies("fds")},
	{name: "push-dies-before-ack", run: pushDies("done")},
	{name: "push-garbage", run: pushDies("garbage")},
	{name: "second-prepare", run: secondPrepare},
	{name: "kexec-refused", run: kexecRefused},
	{name: "initrd-not-initramfs", run: initrdNotInitramfs},
	{name: "device-held", run: deviceHeld},
	{name: "hostile-config", run: hostileConfig},
	{name: "non-root-push", run: nonRootPush},
	{name: "kill-during-freeze", run: killDuringFreeze, loaded: loaded},
}

func faultPrepare() error {
	os.MkdirAll("/run/luoinit", 0o755)
	if err := writeConfig(""); err != nil {
		return err
	}
	for _, f := range prepFaults {
		guest.Info("fault %s: start at %v", f.name, guest.BootTime())
		outcome, err := f.run()
		if err != nil {
			return fmt.Errorf("fault %s: %w", f.name, err)
		}
		left, err := nothingLeft(f.loaded)
		if err != nil {
			return fmt.Errorf("fault %s: after it: %w", f.name, err)
		}
		guest.Mark("FAULT", "%s %s | left: %s", f.name, outcome, left)
	}
	guest.Pass("%d prepare faults, each with its defined outcome and nothing left behind", len(prepFaults))
	return nil
}

// running are the workloads of the fault under way; nothingLeft checks
// them and ends them.
var running []*proc

// nothingLeft checks what a failed, cancelled or killed prepare must
// leave: every workload running (not stopped), no LUO session (each
// workload's session can be created again, which the kernel refuses with
// EEXIST while one of that name exists), /dev/liveupdate free, and no
// kexec image unless loaded says a SIGKILL left one. Then it ends the
// fault's workloads.
func nothingLeft(img image) (string, error) {
	for _, p := range running {
		select {
		case <-p.done:
			continue // ended as the fault wanted (a dying pusher)
		default:
		}
		if st := p.state(); st != 'S' && st != 'R' {
			return "", fmt.Errorf("workload pid %d is in state %q, want running", p.cmd.Process.Pid, st)
		}
	}
	dev, err := luo.Open(luo.DefaultPath)
	if err != nil {
		return "", fmt.Errorf("/dev/liveupdate not free: %w", err)
	}
	names := append(slices.Sorted(maps.Keys(sessionsNamed)), carry.Session)
	for _, name := range names {
		s, err := dev.CreateSession(name)
		if err != nil {
			dev.Close()
			return "", fmt.Errorf("session %q still exists: %w", name, err)
		}
		s.Close()
	}
	dev.Close()
	got := kexecLoaded()
	switch {
	case img == loaded && got != "1", img == unloaded && got != "0":
		return "", fmt.Errorf("kexec_loaded is %s", got)
	}
	left := fmt.Sprintf("sessions_free=%s kexec_loaded=%s", strings.Join(names, ","), got)
	for _, p := range running {
		p.cmd.Process.Signal(unix.SIGKILL)
		<-p.done
	}
	running = nil
	return left, nil
}

func kexecLoaded() string {
	b, _ := os.ReadFile("/sys/kernel/kexec_loaded")
	return strings.TrimSpace(string(b))
}

// workloads starts kv (socket, pushes when the socket appears) and holder
// (pidfd), or only holder. kv pushes once, as soon as the socket file is
// there: a stale one left by a killed prepare is removed first here, and
// the faults that test its replacement start kv only once prepare
// listens (startKV).
func workloads(withKV bool) error {
	if withKV {
		os.Remove("/run/luoinit/prepare.sock")
	}
	kv, holder, err := startWorkloads("")
	if err != nil {
		return err
	}
	running = append(running, kv, holder)
	if !withKV {
		kv.cmd.Process.Signal(unix.SIGKILL)
		<-kv.done
	}
	return nil
}

// startKV starts the kv pusher once prepare (buf) listens.
func startKV(buf *syncBuffer) error {
	if err := waitOutput(buf, "waiting up to"); err != nil {
		return err
	}
	kv, err := start("/init", "workload", "push", "--name", "kv", "--memfds", kvMemfds)
	if err != nil {
		return err
	}
	running = append(running, kv)
	return nil
}

// prepareCmd starts luoinit prepare with the fault config, its output on
// the console and kept.
// prepareCmd starts a prepare of the faults' config, with a line per
// preserved fd (--log-fds): some faults act at one.
func prepareCmd(extra ...string) (*exec.Cmd, *syncBuffer, error) {
	return prepareCmdEnv(nil, extra...)
}

// prepareCmdEnv is prepareCmd with env added.
func prepareCmdEnv(env []string, extra ...string) (*exec.Cmd, *syncBuffer, error) {
	return startPrepareEnv(env, append([]string{"--config", configPath, "--kernel", vm.GuestKernel, "--initrd", vm.GuestInitramfs2, "--log-fds"}, extra...)...)
}

// stopEnv makes a prepare of the test build stop itself with SIGSTOP at
// step (prepare/testhook.go).
func stopEnv(step string) []string { return []string{"LUOINIT_TEST_STOP_AT=" + step} }

// killStopped waits (up to a minute) until prepare has stopped itself at
// step, checks that the last line it wrote says so, and SIGKILLs it. It
// returns that line: the proof of where the kill landed.
func killStopped(cmd *exec.Cmd, buf *syncBuffer, step string) (string, error) {
	pid := cmd.Process.Pid
	for i := 0; ; i++ {
		if st, err := procStateOf(pid); err == nil && st == 'T' {
			break
		}
		if i == 6000 {
			cmd.Process.Kill()
			return "", fmt.Errorf("prepare never stopped at step %s: %s", step, lastLines(buf.String(), 4))
		}
		time.Sleep(10 * time.Millisecond)
	}
	last := strings.TrimSpace(lastLines(buf.String(), 1))
	cmd.Process.Kill()
	if code := exitOf(cmd); code != 128+9 {
		return "", fmt.Errorf("prepare exit %d, want killed", code)
	}
	if want := "test hook: stopping at step " + step + " "; !strings.Contains(last, want) {
		return "", fmt.Errorf("prepare stopped, but its last line is %q, not %q", last, want)
	}
	return last, nil
}

// waitOutput waits up to a minute for text in buf.
func waitOutput(buf *syncBuffer, text string) error {
	for i := 0; i < 12000; i++ {
		if strings.Contains(buf.String(), text) {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("prepare never said %q: %s", text, lastLines(buf.String(), 4))
}

// exitOf waits for cmd and returns its exit status.
func exitOf(cmd *exec.Cmd) int {
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// mustSay checks that out holds every one of words.
func mustSay(out string, words ...string) error {
	for _, w := range words {
		if !strings.Contains(out, w) {
			return fmt.Errorf("prepare did not say %q: %s", w, lastLines(out, 4))
		}
	}
	return nil
}

// killDuringCollect: prepare waits for kv, which is not running, and is
// SIGKILLed meanwhile. Defined outcome: the kernel closes its sessions
// (holder's fd was preserved already) and nothing is loaded; the socket
// file stays behind, stale, and the next prepare replaces it.
func killDuringCollect() (string, error) {
	if err := workloads(false); err != nil {
		return "", err
	}
	cmd, buf, err := prepareCmdEnv(stopEnv("collect"), "--dry-run")
	if err != nil {
		return "", err
	}
	last, err := killStopped(cmd, buf, "collect")
	if err != nil {
		return "", err
	}
	if _, err := os.Lstat(filepath.Join("/run/luoinit", "prepare.sock")); err != nil {
		return "", fmt.Errorf("no stale socket left to test the next prepare with: %v", err)
	}
	return fmt.Sprintf("killed at %q: sessions dropped by the kernel, nothing loaded, stale socket left", last), nil
}

// killAt: prepare (with mode) is SIGKILLed when it says text. Defined
// outcome: as killDuringCollect; with --no-reboot after the kexec load
// the image stays loaded (see replaceStaleImage).
func killAt(step, mode string) func() (string, error) {
	return func() (string, error) {
		if err := workloads(false); err != nil {
			return "", err
		}
		cmd, buf, err := prepareCmdEnv(stopEnv(step), mode)
		if err != nil {
			return "", err
		}
		if err := startKV(buf); err != nil {
			cmd.Process.Kill()
			return "", err
		}
		last, err := killStopped(cmd, buf, step)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("killed at %q: sessions dropped by the kernel, workloads running", last), nil
	}
}

// replaceStaleImage: the image a killed prepare left loaded is replaced
// by the next prepare, whose cancel unloads it: a reboot(KEXEC) by anyone
// else in between would boot a manifest whose sessions are gone, and PID 1
// there would report every fd lost (TestDegradedBoot covers that boot).
func replaceStaleImage() (string, error) {
	if kexecLoaded() != "1" {
		return "", errors.New("no stale image loaded")
	}
	if err := workloads(true); err != nil {
		return "", err
	}
	out, code, err := runPrepare("--config", configPath, "--kernel", vm.GuestKernel, "--initrd", vm.GuestInitramfs2, "--dry-run")
	if err != nil || code != 0 {
		return "", fmt.Errorf("prepare after a killed one: exit %d, %v: %s", code, err, lastLines(out, 4))
	}
	return "the next prepare replaced and unloaded it", mustSay(out, "kexec image unloaded")
}

// collectTimeout: a socket workload never pushes. Defined outcome:
// prepare gives up after --collect-timeout, naming it, and cancels.
func collectTimeout() (string, error) {
	if err := workloads(false); err != nil {
		return "", err
	}
	start := time.Now()
	out, code, err := runPrepare("--config", configPath, "--kernel", vm.GuestKernel, "--initrd", vm.GuestInitramfs2, "--collect-timeout", "3s")
	if err != nil || code != 1 {
		return "", fmt.Errorf("exit %d, %v, want 1", code, err)
	}
	if err := mustSay(out, `workloads "kv" did not push their fds within 3s`, "sessions closed"); err != nil {
		return "", err
	}
	return fmt.Sprintf("exit 1 after %v naming kv, sessions closed", time.Since(start).Round(100*time.Millisecond)), nil
}

// pushDies: a pusher for kv breaks off at step, then (unless it got as far
// as DONE) the real kv pushes. Defined outcome: the broken connection is
// answered or logged and does not hold up the prepare; fds received
// before a lost ACK are preserved all the same.
func pushDies(step string) func() (string, error) {
	return func() (string, error) {
		if err := workloads(false); err != nil {
			return "", err
		}
		cmd, buf, err := prepareCmd("--dry-run", "--collect-timeout", "60s")
		if err != nil {
			return "", err
		}
		if err := waitOutput(buf, "waiting up to"); err != nil {
			cmd.Process.Kill()
			return "", err
		}
		pf, err := start("/init", "workload", "pushfault", "--name", "kv", "--step", step, "--memfds", kvMemfds)
		if err != nil {
			return "", err
		}
		<-pf.done
		if step != "done" {
			if err := startKV(buf); err != nil {
				cmd.Process.Kill()
				return "", err
			}
		}
		if step == "done" {
			// The pusher is gone before prepare answers (preserving takes
			// far longer than an exit), so the ACK cannot be delivered:
			// the workload cannot know its fds were kept, and prepare
			// cancels (nothingLeft checks what it undid).
			code := exitOf(cmd)
			out := buf.String()
			if code != 1 {
				return "", fmt.Errorf("dry run with an undeliverable ACK: exit %d, want 1: %s", code, lastLines(out, 4))
			}
			if err := mustSay(out, "preserved kv/arena", `workload "kv": its ACK could not be delivered`, "cancelling the live update"); err != nil {
				return "", err
			}
			return "prepare cancelled: kv's ACK could not be delivered", nil
		}
		if code := exitOf(cmd); code != 0 {
			return "", fmt.Errorf("dry run exit %d: %s", code, lastLines(buf.String(), 4))
		}
		out := buf.String()
		if err := mustSay(out, `session = "luoinit.kv"`, "preserved kv/arena", "preserved kv/index"); err != nil {
			return "", err
		}
		want := map[string]string{
			"connect": "closed by peer",
			"hello":   "closed by peer",
			"fds":     "closed by peer",
			"garbage": "bad magic",
		}[step]
		if err := mustSay(out, want); err != nil {
			return "", err
		}
		return fmt.Sprintf("logged (%q), prepare went on and preserved kv", want), nil
	}
}

// secondPrepare: a prepare while another holds its sessions. Defined
// outcome: the second fails at its first session (EEXIST) and undoes only
// its own work; the first is still prepared and cancels cleanly.
func secondPrepare() (string, error) {
	if err := workloads(false); err != nil {
		return "", err
	}
	first, buf, err := prepareCmd("--no-reboot")
	if err != nil {
		return "", err
	}
	if err := startKV(buf); err != nil {
		first.Process.Kill()
		return "", err
	}
	if err := waitOutput(buf, "holding the sessions"); err != nil {
		first.Process.Kill()
		return "", err
	}
	out, code, err := runPrepare("--config", configPath, "--kernel", vm.GuestKernel, "--initrd", vm.GuestInitramfs2, "--dry-run")
	if err != nil || code != 1 {
		first.Process.Kill()
		return "", fmt.Errorf("second prepare: exit %d, %v, want 1", code, err)
	}
	if err := mustSay(out, "EEXIST"); err != nil {
		first.Process.Kill()
		return "", err
	}
	if kexecLoaded() != "1" {
		first.Process.Kill()
		return "", errors.New("the second prepare unloaded the first one's image")
	}
	first.Process.Signal(unix.SIGTERM)
	if code := exitOf(first); code != 1 {
		return "", fmt.Errorf("first prepare after SIGTERM: exit %d, want 1", code)
	}
	return "second exit 1 with EEXIST, first still prepared, then cancelled", mustSay(buf.String(), "kexec image unloaded")
}

// kexecRefused: the next kernel is not a kernel. Defined outcome: the
// preflight refuses it (by kexec_file_load's own rule for a bzImage)
// before anything is preserved or stopped; nothing to undo.
func kexecRefused() (string, error) {
	if err := workloads(true); err != nil {
		return "", err
	}
	bogus := "/tmp/not-a-kernel"
	if err := os.WriteFile(bogus, []byte(strings.Repeat("not a bzImage\n", 4096)), 0o644); err != nil {
		return "", err
	}
	out, code, err := runPrepare("--config", configPath, "--kernel", bogus, "--initrd", vm.GuestInitramfs2)
	if err != nil || code != 1 {
		return "", fmt.Errorf("exit %d, %v, want 1", code, err)
	}
	// The preflight reads the image before anything is preserved, so the
	// refusal comes from it, with kexec_file_load's own rule named, and
	// there is nothing to undo.
	if err := mustSay(out, "not a bzImage kexec_file_load can load", "preflight refused the live update", "nothing was held"); err != nil {
		return "", err
	}
	if strings.Contains(out, "phase frozen") {
		return "", errors.New("prepare stopped the workloads before the kernel was loaded")
	}
	return "exit 1: refused by the preflight", nil
}

// initrdNotInitramfs: the next initramfs given is a kernel image.
// Defined outcome: the preflight refuses it before anything is touched,
// saying what the file starts with; nothing preserved, stopped or loaded.
func initrdNotInitramfs() (string, error) {
	if err := workloads(true); err != nil {
		return "", err
	}
	out, code, err := runPrepare("--config", configPath, "--kernel", vm.GuestKernel, "--initrd", vm.GuestKernel)
	if err != nil || code != 1 {
		return "", fmt.Errorf("exit %d, %v, want 1", code, err)
	}
	if err := mustSay(out, "FAIL initramfs: "+vm.GuestKernel+": not an initramfs: at byte 0 it starts with ", "preflight refused the live update", "nothing was held"); err != nil {
		return "", err
	}
	if strings.Contains(out, "phase prepared") {
		return "", errors.New("prepare went past the preflight")
	}
	return "exit 1: the preflight refused the kernel image as an initramfs, nothing held", nil
}

// deviceHeld: another process holds /dev/liveupdate. Defined outcome:
// EBUSY named at once, nothing touched.
func deviceHeld() (string, error) {
	if err := workloads(true); err != nil {
		return "", err
	}
	holder, err := start("/init", "workload", "holddev")
	if err != nil {
		return "", err
	}
	defer func() { holder.cmd.Process.Kill(); <-holder.done }()
	time.Sleep(300 * time.Millisecond)
	out, code, err := runPrepare("--config", configPath, "--kernel", vm.GuestKernel, "--initrd", vm.GuestInitramfs2)
	if err != nil || code != 1 {
		return "", fmt.Errorf("exit %d, %v, want 1", code, err)
	}
	if err := mustSay(out, "EBUSY"); err != nil {
		return "", err
	}
	holder.cmd.Process.Kill()
	<-holder.done
	return "exit 1 with EBUSY, nothing touched", nil
}

// hostileConfig: the 40 KB config of nested inline tables that took every
// reader down. Defined outcome: refused at once, naming file and line.
func hostileConfig() (string, error) {
	hostile := "/tmp/hostile.toml"
	body := "version = 1\nx = " + strings.Repeat("{a=", 10000) + "1" + strings.Repeat("}", 10000) + "\n"
	if err := os.WriteFile(hostile, []byte(body), 0o644); err != nil {
		return "", err
	}
	start := time.Now()
	out, code, err := runPrepare("--config", hostile, "--kernel", vm.GuestKernel, "--dry-run")
	took := time.Since(start)
	if err != nil || code != 1 {
		return "", fmt.Errorf("exit %d, %v, want 1", code, err)
	}
	if err := mustSay(out, hostile+":2:", "nested more than 16 deep"); err != nil {
		return "", err
	}
	return fmt.Sprintf("refused in %v naming line 2", took.Round(time.Millisecond)), nil
}

// nonRootPush: a socket workload that runs as uid 1000 pushes its own
// fds through the push socket (mode 0666), and a process of uid 1001 that
// claims to be it is refused. Defined outcome: the stranger gets ERROR
// naming both uids and nothing of it is preserved; the workload's own
// push is preserved.
func nonRootPush() (string, error) {
	if err := workloads(false); err != nil {
		return "", err
	}
	defer writeConfig("")
	user := "\n[[workload]]\nname = \"user\"\nargv = [\"/init\", \"workload\", \"push\", \"--name\", \"user\"]\nhandoff = \"socket\"\nuid = 1000\ngid = 1000\n\n  [[workload.fd]]\n  name = \"u\"\n"
	if err := writeConfigText(fmt.Sprintf(baseConfig, "") + user); err != nil {
		return "", err
	}
	cmd, buf, err := prepareCmd("--dry-run", "--collect-timeout", "60s")
	if err != nil {
		return "", err
	}
	if err := startKV(buf); err != nil {
		cmd.Process.Kill()
		return "", err
	}
	var stranger syncBuffer
	if err := runAs(1001, &stranger, "/init", "workload", "push", "--name", "user", "--memfds", "u:4096:61"); err != nil {
		cmd.Process.Kill()
		return "", err
	}
	if !strings.Contains(stranger.String(), "WORKLOAD_ACK user error") || !strings.Contains(stranger.String(), "runs as uid 1000, the connection is from uid 1001") {
		cmd.Process.Kill()
		return "", fmt.Errorf("the stranger of uid 1001 was not refused: %s", lastLines(stranger.String(), 2))
	}
	var own syncBuffer
	if err := runAs(1000, &own, "/init", "workload", "push", "--name", "user", "--memfds", "u:4096:62"); err != nil {
		cmd.Process.Kill()
		return "", err
	}
	if !strings.Contains(own.String(), "WORKLOAD_ACK user ok") {
		cmd.Process.Kill()
		return "", fmt.Errorf("the workload of uid 1000 could not push: %s", lastLines(own.String(), 2))
	}
	if code := exitOf(cmd); code != 0 {
		return "", fmt.Errorf("dry run exit %d: %s", code, lastLines(buf.String(), 4))
	}
	if err := mustSay(buf.String(), "preserved user/u", `name = "user"`); err != nil {
		return "", err
	}
	return "uid 1000 pushed its own fd; uid 1001 claiming it was refused with ERROR", nil
}

// runAs runs a command as uid (and the same gid), its output on the
// console and in buf, until it exits (a pusher exits on SIGTERM only, so
// it is ended once it reported its ACK).
func runAs(uid uint32, buf *syncBuffer, name string, args ...string) error {
	c := exec.Command(name, args...)
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	c.Stdout, c.Stderr = ioTee(buf), ioTee(buf)
	if err := c.Start(); err != nil {
		return err
	}
	defer func() { c.Process.Kill(); c.Wait() }()
	for i := 0; i < 1200; i++ {
		if strings.Contains(buf.String(), "WORKLOAD_ACK") || strings.Contains(buf.String(), "LUOTEST:FAIL") {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s as uid %d reported nothing: %s", name, uid, lastLines(buf.String(), 2))
}

// killDuringFreeze: prepare is SIGKILLed in its freeze, while it waits
// for a workload that ignores SIGTERM. Defined outcome: the freeze is the
// point of no return. The workloads it already ended stay ended, the one
// it waits for runs on, the kernel drops the sessions with prepare's fds
// (what the ended workloads held is gone: nothing can keep it without a
// process holding the session fds), and the kexec image stays loaded.
// Nothing reboots.
func killDuringFreeze() (string, error) {
	if err := workloads(false); err != nil {
		return "", err
	}
	defer writeConfig("")
	stubborn := "\n[[workload]]\nname = \"stubborn\"\nargv = [\"/init\", \"workload\", \"auto\", \"--name\", \"stubborn\"]\nhandoff = \"socket\"\nstop_timeout = \"5s\"\n\n  [[workload.fd]]\n  name = \"s\"\n"
	if err := writeConfigText(fmt.Sprintf(baseConfig, "") + stubborn); err != nil {
		return "", err
	}
	cmd, buf, err := prepareCmd("--collect-timeout", "60s")
	if err != nil {
		return "", err
	}
	if err := startKV(buf); err != nil {
		cmd.Process.Kill()
		return "", err
	}
	// The freeze stops workloads in the order they pushed: stubborn last.
	if err := waitOutput(buf, "preserved kv/index"); err != nil {
		cmd.Process.Kill()
		return "", err
	}
	st, err := start("/init", "workload", "auto", "--name", "stubborn", "--memfds", "s:4096:51", "--ignore-term")
	if err != nil {
		cmd.Process.Kill()
		return "", err
	}
	running = append(running, st)
	if err := waitOutput(buf, "phase frozen"); err != nil {
		cmd.Process.Kill()
		return "", err
	}
	time.Sleep(time.Second) // holder and kv end at SIGTERM; stubborn has 5 s
	cmd.Process.Kill()
	if code := exitOf(cmd); code != 128+9 {
		return "", fmt.Errorf("prepare exit %d, want killed", code)
	}
	ended := 0
	for _, p := range running[1:3] { // holder, and the kv that pushed
		select {
		case <-p.done:
			ended++
		default:
		}
	}
	if ended != 2 {
		return "", fmt.Errorf("%d of holder and kv ended by the freeze, want 2", ended)
	}
	// The one the freeze was still waiting for runs on.
	select {
	case <-st.done:
		return "", errors.New("stubborn, which the freeze was still waiting for, ended")
	default:
	}
	if state := st.state(); state != 'S' && state != 'R' {
		return "", fmt.Errorf("stubborn is in state %q after the kill, want running", state)
	}
	if kexecLoaded() != "1" {
		return "", errors.New("the image prepare loaded is gone")
	}
	return "holder and kv ended, stubborn still running, sessions dropped, image left loaded, no reboot", nil
}

// pushFaultMain is a pusher that breaks off at a step of the protocol:
// "connect" (closes before HELLO), "hello" (closes after it), "fds" (sends
// one FDS of its first fd, then closes without DONE), "done" (sends
// everything and DONE, then exits without reading the ACK), "garbage"
// (sends bytes that are not the protocol and reads the answer). The
// messages are built by hand, as a broken peer in any language would.
func pushFaultMain(name, socket, step string, files []handoff.File) {
	waitFile(socket)
	if step == "done" {
		c, err := handoff.Dial(socket)
		if err != nil {
			fail(name, err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if err := c.SendHello(handoff.Hello{Direction: handoff.DirectionPush, Workload: name}); err != nil {
			fail(name, err)
		}
		// Said before, not after: a console line takes longer under
		// emulation than prepare takes to answer.
		fmt.Printf("\nLUOTEST:INFO pushfault %s: sending everything, then exiting before the ACK\n", name)
		if err := c.SendFiles(files); err != nil {
			fail(name, err)
		}
		os.Exit(0)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fail(name, err)
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: socket}); err != nil {
		fail(name, err)
	}
	hello := append([]byte{1, 0, byte(handoff.DirectionPush), byte(len(name))}, name...)
	switch step {
	case "connect":
	case "hello":
		unix.Write(fd, wireMsg(1, hello))
	case "fds":
		unix.Write(fd, wireMsg(1, hello))
		first := files[0]
		fds := append([]byte{1, 0, byte(len(first.Name))}, first.Name...)
		if err := unix.Sendmsg(fd, wireMsg(2, fds), unix.UnixRights(int(first.File.Fd())), nil, 0); err != nil {
			fail(name, err)
		}
	case "garbage":
		unix.Write(fd, []byte("GET / HTTP/1.0\r\n\r\n"))
		tv := unix.Timeval{Sec: 10}
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		b := make([]byte, 512)
		n, _ := unix.Read(fd, b) // the ERROR it is answered with
		fmt.Printf("\nLUOTEST:INFO pushfault garbage was answered with %q\n", b[:max(n, 0)])
	}
	fmt.Printf("\nLUOTEST:INFO pushfault %s: breaking off after %s\n", name, step)
	os.Exit(0)
}

// wireMsg frames a handoff message of protocol version 1 (docs/handoff.md).
func wireMsg(typ uint16, payload []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, handoff.Magic)
	b = binary.LittleEndian.AppendUint16(b, handoff.ProtocolVersion)
	b = binary.LittleEndian.AppendUint16(b, typ)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

// holdDevMain holds /dev/liveupdate open until killed.
func holdDevMain() {
	dev, err := luo.Open(luo.DefaultPath)
	if err != nil {
		fail("holddev", err)
	}
	defer dev.Close()
	time.Sleep(time.Hour)
}
