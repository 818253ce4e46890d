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
// to happen, and what it left is observed (exit statuses, which
// processes run, which LUO sessions exist, kexec_loaded) and reported as
// data in `LUOTEST:FAULT <name> key=value ...`. The guest judges
// nothing: the host test (tests/scenarios/fault_test.go) holds each
// fault's defined outcome and checks it against that data and against
// the fault's own console lines (what prepare and the workloads said
// between `fault <name>: start` and the report). Whatever a fault left,
// the guest then ends the fault's workloads, so that the next one starts
// from the same place.

// prepFault is one fault: run makes it happen and adds what it saw to r.
// An error means the fault could not be played (a process did not
// start, prepare never reached the step to act at), not that its outcome
// was wrong.
type prepFault struct {
	name string
	run  func(r *report) error
}

var prepFaults = []prepFault{
	{name: "kill-during-collect", run: killDuringCollect},
	{name: "kill-during-preserve", run: killAt("preserve:kv", "--dry-run")},
	{name: "kill-after-manifest", run: killAt("manifest", "--dry-run")},
	{name: "kill-after-kexec-load", run: killAt("kexec-load", "--no-reboot")},
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
	{name: "kill-during-freeze", run: killDuringFreeze},
}

// report is what the guest observed of one fault, as key=value words; a
// value with a space or a quote is Go-quoted.
type report []string

func (r *report) add(key string, value any) {
	v := fmt.Sprint(value)
	if v == "" || strings.ContainsAny(v, " \"=\t") {
		v = fmt.Sprintf("%q", v)
	}
	*r = append(*r, key+"="+v)
}

func faultPrepare() error {
	os.MkdirAll("/run/luoinit", 0o755)
	if err := writeConfig(""); err != nil {
		return err
	}
	for _, f := range prepFaults {
		guest.Info("fault %s: start at %v", f.name, guest.BootTime())
		var r report
		if err := f.run(&r); err != nil {
			return fmt.Errorf("fault %s: %w", f.name, err)
		}
		if err := observeLeft(&r); err != nil {
			return fmt.Errorf("fault %s: after it: %w", f.name, err)
		}
		guest.Mark("FAULT", "%s %s", f.name, strings.Join(r, " "))
	}
	guest.Pass("%d prepare faults played and reported", len(prepFaults))
	return nil
}

// tracked is a process of the fault under way, by name; observeLeft
// reports and ends them.
type tracked struct {
	name string
	p    *proc
}

var running []tracked

func track(name string, p *proc) { running = append(running, tracked{name, p}) }

// observeLeft reports what a fault left, then ends its processes:
//   - procs: each process of the fault, "ended" or its state letter from
//     /proc (S, R, T for stopped...);
//   - sessions_free: the sessions of every workload of every config
//     written, and luoinit's own, that could be created again (the
//     kernel refuses one whose name exists with EEXIST);
//     sessions_left: those it refused, with the error;
//   - device: whether /dev/liveupdate could be opened ("free", or the
//     error);
//   - kexec_loaded: /sys/kernel/kexec_loaded.
//
// An error only for what makes the next fault meaningless to play.
func observeLeft(r *report) error {
	var procs []string
	for _, t := range running {
		select {
		case <-t.p.done:
			procs = append(procs, t.name+":ended")
		default:
			procs = append(procs, fmt.Sprintf("%s:%c", t.name, t.p.state()))
		}
	}
	r.add("procs", strings.Join(procs, ","))
	dev, err := luo.Open(luo.DefaultPath)
	if err != nil {
		r.add("device", err.Error())
		return fmt.Errorf("/dev/liveupdate not free: %w", err)
	}
	r.add("device", "free")
	var free, left []string
	for _, name := range append(slices.Sorted(maps.Keys(sessionsNamed)), carry.Session) {
		s, err := dev.CreateSession(name)
		if err != nil {
			left = append(left, fmt.Sprintf("%s(%v)", name, err))
			continue
		}
		s.Close()
		free = append(free, name)
	}
	dev.Close()
	r.add("sessions_free", strings.Join(free, ","))
	r.add("sessions_left", strings.Join(left, ","))
	r.add("kexec_loaded", kexecLoaded())
	for _, t := range running {
		t.p.cmd.Process.Signal(unix.SIGKILL)
		<-t.p.done
	}
	running = nil
	return nil
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
	track("holder", holder)
	if withKV {
		track("kv", kv)
	} else {
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
	track("kv", kv)
	return nil
}

// prepareCmd starts a prepare of the faults' config, its output on the
// console and kept, with a line per preserved fd (--log-fds): some
// faults act at one.
func prepareCmd(extra ...string) (*exec.Cmd, *syncBuffer, error) {
	return prepareCmdEnv(nil, extra...)
}

// prepareCmdEnv is prepareCmd with env added.
func prepareCmdEnv(env []string, extra ...string) (*exec.Cmd, *syncBuffer, error) {
	return startPrepareEnv(env, append([]string{"--config", configPath, "--kernel", vm.GuestKernel, "--initrd", vm.GuestInitramfs2, "--log-fds"}, extra...)...)
}

// runFaultPrepare runs a prepare to its end and reports its exit status
// under key.
func runFaultPrepare(r *report, key string, args ...string) error {
	_, code, err := runPrepare(args...)
	if err != nil {
		return err
	}
	r.add(key, code)
	return nil
}

// stopEnv makes a prepare of the test build stop itself with SIGSTOP at
// step (prepare/testhook.go).
func stopEnv(step string) []string { return []string{"LUOINIT_TEST_STOP_AT=" + step} }

// killStopped waits (up to a minute) until prepare has stopped itself at
// step and SIGKILLs it. It reports the last line prepare wrote before it
// stopped (last: the proof of where the kill landed) and its exit.
func killStopped(r *report, cmd *exec.Cmd, buf *syncBuffer, step string) error {
	pid := cmd.Process.Pid
	for i := 0; ; i++ {
		if st, err := procStateOf(pid); err == nil && st == 'T' {
			break
		}
		if i == 6000 {
			cmd.Process.Kill()
			return fmt.Errorf("prepare never stopped at step %s: %s", step, lastLines(buf.String(), 4))
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.add("last", strings.TrimSpace(lastLines(buf.String(), 1)))
	cmd.Process.Kill()
	r.add("exit", exitOf(cmd))
	return nil
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

// exitOf waits for cmd and returns its exit status (128+n for signal n).
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

// killDuringCollect: prepare waits for kv, which is not running, and is
// killed there. Reports whether the socket file stayed behind (the next
// prepare must replace it).
func killDuringCollect(r *report) error {
	if err := workloads(false); err != nil {
		return err
	}
	cmd, buf, err := prepareCmdEnv(stopEnv("collect"), "--dry-run")
	if err != nil {
		return err
	}
	if err := killStopped(r, cmd, buf, "collect"); err != nil {
		return err
	}
	_, err = os.Lstat(filepath.Join("/run/luoinit", "prepare.sock"))
	r.add("stale_socket", err == nil)
	return nil
}

// killAt: prepare (with mode) is killed once it stopped itself at step.
func killAt(step, mode string) func(*report) error {
	return func(r *report) error {
		if err := workloads(false); err != nil {
			return err
		}
		cmd, buf, err := prepareCmdEnv(stopEnv(step), mode)
		if err != nil {
			return err
		}
		if err := startKV(buf); err != nil {
			cmd.Process.Kill()
			return err
		}
		return killStopped(r, cmd, buf, step)
	}
}

// replaceStaleImage: a prepare after the one killed with its image
// loaded. Reports kexec_loaded before it and its exit.
func replaceStaleImage(r *report) error {
	r.add("loaded_before", kexecLoaded())
	if err := workloads(true); err != nil {
		return err
	}
	return runFaultPrepare(r, "exit", "--config", configPath, "--kernel", vm.GuestKernel, "--initrd", vm.GuestInitramfs2, "--dry-run")
}

// collectTimeout: a socket workload never pushes; prepare has 3 s.
func collectTimeout(r *report) error {
	if err := workloads(false); err != nil {
		return err
	}
	start := time.Now()
	err := runFaultPrepare(r, "exit", "--config", configPath, "--kernel", vm.GuestKernel, "--initrd", vm.GuestInitramfs2, "--collect-timeout", "3s")
	r.add("took", time.Since(start).Round(100*time.Millisecond))
	return err
}

// pushDies: a pusher for kv breaks off at step, then (unless it got as far
// as DONE) the real kv pushes. Reports the dry run's exit.
func pushDies(step string) func(*report) error {
	return func(r *report) error {
		if err := workloads(false); err != nil {
			return err
		}
		cmd, buf, err := prepareCmd("--dry-run", "--collect-timeout", "60s")
		if err != nil {
			return err
		}
		if err := waitOutput(buf, "waiting up to"); err != nil {
			cmd.Process.Kill()
			return err
		}
		pf, err := start("/init", "workload", "pushfault", "--name", "kv", "--step", step, "--memfds", kvMemfds)
		if err != nil {
			cmd.Process.Kill()
			return err
		}
		<-pf.done
		// After DONE the pusher is gone before prepare answers (preserving
		// takes far longer than an exit), so its ACK cannot be delivered.
		if step != "done" {
			if err := startKV(buf); err != nil {
				cmd.Process.Kill()
				return err
			}
		}
		r.add("exit", exitOf(cmd))
		return nil
	}
}

// secondPrepare: a prepare while another holds its sessions
// (--no-reboot). Reports the second's exit, kexec_loaded after it, and
// the first's exit after SIGTERM.
func secondPrepare(r *report) error {
	if err := workloads(false); err != nil {
		return err
	}
	first, buf, err := prepareCmd("--no-reboot")
	if err != nil {
		return err
	}
	if err := startKV(buf); err != nil {
		first.Process.Kill()
		return err
	}
	if err := waitOutput(buf, "holding the sessions"); err != nil {
		first.Process.Kill()
		return err
	}
	if err := runFaultPrepare(r, "second_exit", "--config", configPath, "--kernel", vm.GuestKernel, "--initrd", vm.GuestInitramfs2, "--dry-run"); err != nil {
		first.Process.Kill()
		return err
	}
	r.add("loaded_between", kexecLoaded())
	first.Process.Signal(unix.SIGTERM)
	r.add("first_exit", exitOf(first))
	return nil
}

// kexecRefused: the next kernel is not a kernel.
func kexecRefused(r *report) error {
	if err := workloads(true); err != nil {
		return err
	}
	bogus := "/tmp/not-a-kernel"
	if err := os.WriteFile(bogus, []byte(strings.Repeat("not a bzImage\n", 4096)), 0o644); err != nil {
		return err
	}
	return runFaultPrepare(r, "exit", "--config", configPath, "--kernel", bogus, "--initrd", vm.GuestInitramfs2)
}

// initrdNotInitramfs: the next initramfs given is a kernel image.
func initrdNotInitramfs(r *report) error {
	if err := workloads(true); err != nil {
		return err
	}
	return runFaultPrepare(r, "exit", "--config", configPath, "--kernel", vm.GuestKernel, "--initrd", vm.GuestKernel)
}

// deviceHeld: another process holds /dev/liveupdate during the prepare.
func deviceHeld(r *report) error {
	if err := workloads(true); err != nil {
		return err
	}
	holder, err := start("/init", "workload", "holddev")
	if err != nil {
		return err
	}
	defer func() { holder.cmd.Process.Kill(); <-holder.done }()
	time.Sleep(300 * time.Millisecond)
	return runFaultPrepare(r, "exit", "--config", configPath, "--kernel", vm.GuestKernel, "--initrd", vm.GuestInitramfs2)
}

// hostileConfig: the 40 KB config of nested inline tables that took every
// reader down.
func hostileConfig(r *report) error {
	hostile := "/tmp/hostile.toml"
	body := "version = 1\nx = " + strings.Repeat("{a=", 10000) + "1" + strings.Repeat("}", 10000) + "\n"
	if err := os.WriteFile(hostile, []byte(body), 0o644); err != nil {
		return err
	}
	start := time.Now()
	err := runFaultPrepare(r, "exit", "--config", hostile, "--kernel", vm.GuestKernel, "--dry-run")
	r.add("took", time.Since(start).Round(time.Millisecond))
	return err
}

// nonRootPush: a socket workload that runs as uid 1000 (user) and a
// process of uid 1001 that claims to be it both push, the stranger
// first. Their answers are on the console (WORKLOAD_ACK); the dry run's
// exit is reported.
func nonRootPush(r *report) error {
	if err := workloads(false); err != nil {
		return err
	}
	defer writeConfig("")
	user := "\n[[workload]]\nname = \"user\"\nargv = [\"/init\", \"workload\", \"push\", \"--name\", \"user\"]\nhandoff = \"socket\"\nuid = 1000\ngid = 1000\n\n  [[workload.fd]]\n  name = \"u\"\n"
	if err := writeConfigText(fmt.Sprintf(baseConfig, "") + user); err != nil {
		return err
	}
	cmd, buf, err := prepareCmd("--dry-run", "--collect-timeout", "60s")
	if err != nil {
		return err
	}
	if err := startKV(buf); err != nil {
		cmd.Process.Kill()
		return err
	}
	var stranger, own syncBuffer
	if err := runAs(1001, &stranger, "/init", "workload", "push", "--name", "user", "--memfds", "u:4096:61"); err != nil {
		cmd.Process.Kill()
		return err
	}
	if err := runAs(1000, &own, "/init", "workload", "push", "--name", "user", "--memfds", "u:4096:62"); err != nil {
		cmd.Process.Kill()
		return err
	}
	r.add("exit", exitOf(cmd))
	return nil
}

// runAs runs a command as uid (and the same gid), its output on the
// console and in buf, until it reports its ACK (a pusher exits on
// SIGTERM only, so it is ended then).
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

// killDuringFreeze: prepare is SIGKILLed in its freeze, a second after
// it began, while it waits for stubborn, which ignores SIGTERM and has a
// stop_timeout of 5 s. Reports prepare's exit and kexec_loaded right
// after the kill; the processes are in procs.
func killDuringFreeze(r *report) error {
	if err := workloads(false); err != nil {
		return err
	}
	defer writeConfig("")
	stubborn := "\n[[workload]]\nname = \"stubborn\"\nargv = [\"/init\", \"workload\", \"auto\", \"--name\", \"stubborn\"]\nhandoff = \"socket\"\nstop_timeout = \"5s\"\n\n  [[workload.fd]]\n  name = \"s\"\n"
	if err := writeConfigText(fmt.Sprintf(baseConfig, "") + stubborn); err != nil {
		return err
	}
	cmd, buf, err := prepareCmd("--collect-timeout", "60s")
	if err != nil {
		return err
	}
	if err := startKV(buf); err != nil {
		cmd.Process.Kill()
		return err
	}
	// The freeze stops workloads in the order they pushed: stubborn last.
	if err := waitOutput(buf, "preserved kv/index"); err != nil {
		cmd.Process.Kill()
		return err
	}
	st, err := start("/init", "workload", "auto", "--name", "stubborn", "--memfds", "s:4096:51", "--ignore-term")
	if err != nil {
		cmd.Process.Kill()
		return err
	}
	track("stubborn", st)
	if err := waitOutput(buf, "phase frozen"); err != nil {
		cmd.Process.Kill()
		return err
	}
	time.Sleep(time.Second) // holder and kv end at SIGTERM; stubborn has 5 s
	cmd.Process.Kill()
	r.add("exit", exitOf(cmd))
	r.add("loaded_after_kill", kexecLoaded())
	return nil
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
