package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/tests/vm"
	"github.com/luoinit/luoinit/wellknown"
	"golang.org/x/sys/unix"
)

// The fault campaign across a live update (TestFaultRestore). Stage 1 is
// this program as PID 1: it starts the config's workloads, runs luoinit
// prepare --no-reboot and, once prepared, makes the next boot's manifest
// name a token and a session that were never preserved (as a manifest
// out of step with the kernel would), loads that image in place of
// prepare's, and lets prepare go on (SIGUSR1). Stage 2 is luoinit as
// PID 1; the workloads there each carry a fault (auto's flags) and
// "faultcheck" ends the boot once every one has played out.

// Where the auto workloads say what happened to them, for faultcheck.
func eventFile(name, event string) string { return fmt.Sprintf("/run/luotest.%s.%s", name, event) }

func faultRestoreBefore() error {
	os.MkdirAll("/run/luoinit", 0o755)
	cfg, err := manifest.LoadConfig("/etc/luoinit/config.toml")
	if err != nil {
		return err
	}
	for _, w := range cfg.Workloads {
		if len(w.FDs) == 0 {
			continue // these run after the live update only
		}
		if _, err := start(w.Argv[0], w.Argv[1:]...); err != nil {
			return fmt.Errorf("starting workload %q: %w", w.Name, err)
		}
	}
	// The manifest prepare carries also names fd "ghost" (token 99) of kv
	// and a workload "gone" whose session was never created.
	if err := setManifestFault("tamper"); err != nil {
		return err
	}
	name, value, _ := strings.Cut(manifestFilterEnv, "=")
	os.Setenv(name, value)
	cmd, buf, err := startPrepare("--config", "/etc/luoinit/config.toml", "--kernel", vm.GuestKernel,
		"--initrd", vm.GuestInitramfs2, "--reuse-cmdline", "--collect-timeout", "120s")
	if err != nil {
		return err
	}
	code := exitOf(cmd)
	return fmt.Errorf("luoinit prepare returned (exit %d) instead of rebooting: %s", code, lastLines(buf.String(), 5))
}

// startPrepare starts luoinit prepare with args, its output on the
// console and kept.
func startPrepare(args ...string) (*exec.Cmd, *syncBuffer, error) {
	return startPrepareEnv(nil, args...)
}

// startPrepareEnv is startPrepare with env added to luotest's environment.
func startPrepareEnv(env []string, args ...string) (*exec.Cmd, *syncBuffer, error) {
	buf := new(syncBuffer)
	cmd := exec.Command(luoinitBin, append([]string{"prepare"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = ioTee(buf)
	cmd.Stderr = ioTee(buf)
	return cmd, buf, cmd.Start()
}

// tamper adds to m fd "ghost" (token 99) of kv and a workload "gone"
// whose session was never created.
func tamper(m *manifest.Manifest) error {
	found := false
	for i := range m.Workloads {
		if m.Workloads[i].Name == "kv" {
			m.Workloads[i].FDs = append(m.Workloads[i].FDs, manifest.FD{Name: "ghost", Token: 99, Kind: manifest.KindMemfd})
			found = true
		}
	}
	if !found {
		return fmt.Errorf("no workload kv in the manifest")
	}
	m.Workloads = append(m.Workloads, manifest.Workload{
		Name:      "gone",
		Argv:      []string{"/bin/luotest", "workload", "auto", "--name", "gone", "--memfds", "x:4096:41"},
		Handoff:   manifest.HandoffSocket,
		FDSession: manifest.SessionName("gone"),
		FDs:       []manifest.FD{{Name: "x", Token: 1, Kind: manifest.KindMemfd}},
	})
	return nil
}

// autoFault carries out auto's fault flags on the restore side; it
// returns only if the workload is to go on as usual.
type autoFault struct {
	name       string
	pullFault  string        // first start: "after-hello", "after-fds" (exit unacked) or "ack-error"
	delayHello time.Duration // wait this long before the HELLO
	oomAfter   bool          // first start: after verifying, eat memory until the OOM killer ends it
	ignoreTerm bool          // before the live update: ignore SIGTERM (prepare must SIGKILL)
}

// first reports whether event happens for the first time in this boot,
// and records it.
func (a *autoFault) first(event string) bool {
	p := eventFile(a.name, event)
	if _, err := os.Stat(p); err == nil {
		return false
	}
	os.WriteFile(p, nil, 0o644)
	return true
}

// beforeReceive runs before the pull: a delayed HELLO, or a HELLO and an
// exit with the fds not taken.
func (a *autoFault) beforeReceive() {
	if a.delayHello > 0 {
		fmt.Printf("\nLUOTEST:INFO %s delays its HELLO by %v\n", a.name, a.delayHello)
		time.Sleep(a.delayHello)
	}
	if a.pullFault == "" || !a.first("faulted") {
		return
	}
	f := os.NewFile(3, wellknown.EnvHandoffFD)
	c, err := handoff.NewConn(f)
	if err != nil {
		fail(a.name, err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.SendHello(handoff.Hello{Direction: handoff.DirectionPull, Workload: a.name}); err != nil {
		fail(a.name, err)
	}
	switch a.pullFault {
	case "after-hello":
		fmt.Printf("\nLUOTEST:DIED %s after HELLO, its fds not taken\n", a.name)
	case "after-fds", "ack-error":
		files, err := c.ReceiveFiles()
		if err != nil {
			fail(a.name, err)
		}
		if a.pullFault == "ack-error" && len(files) > 0 {
			c.SendAck(files[0].Name, errors.New("refused on purpose by the fault test"))
		}
		fmt.Printf("\nLUOTEST:DIED %s %s, %d fds received and closed unacked\n", a.name, a.pullFault, len(files))
	default:
		fail(a.name, fmt.Errorf("unknown --pull-fault %q", a.pullFault))
	}
	os.Exit(3)
}

// afterRestore runs once the fds are verified: the OOM fault.
func (a *autoFault) afterRestore() {
	if !a.oomAfter || !a.first("oom") {
		return
	}
	fmt.Printf("\nLUOTEST:OOM_START %s\n", a.name)
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte("1000"), 0o644); err != nil {
		fail(a.name, err)
	}
	var hog [][]byte
	for total := 0; total < 8<<30; total += 64 << 20 {
		b := make([]byte, 64<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		hog = append(hog, b)
	}
	fail(a.name, fmt.Errorf("not OOM-killed after %d chunks of 64 MiB", len(hog)))
}

// signallerMain runs under luoinit (PID 1) while the restore is still
// going on (a workload delays its HELLO): it sends PID 1 every signal a
// process can catch, three times each, except SIGINT, SIGUSR1 and SIGUSR2
// (reboot, halt, poweroff by design: TestPID1 in package pid1 covers
// those), then asks for a prepare, which PID 1 must refuse with "try
// again" (exit 75) rather than let run standalone.
func signallerMain() {
	takeHandoff("signaller")
	state, _ := os.ReadFile("/run/luoinit/state")
	if !strings.Contains(string(state), "state=restoring") {
		vmEnd("FAIL", fmt.Sprintf("signaller: the restore was over before the barrage: %q", state))
	}
	sent := 0
	for sig := unix.Signal(1); sig <= 64; sig++ {
		switch sig {
		case unix.SIGKILL, unix.SIGSTOP, unix.SIGINT, unix.SIGUSR1, unix.SIGUSR2:
			continue
		}
		for k := 0; k < 3; k++ {
			if err := unix.Kill(1, sig); err != nil {
				vmEnd("FAIL", fmt.Sprintf("kill(1, %d): %v", sig, err))
			}
			sent++
		}
	}
	state, _ = os.ReadFile("/run/luoinit/state")
	fmt.Printf("\nLUOTEST:BARRAGE %d signals to PID 1 during %s\n", sent, firstLine(string(state)))
	var out syncBuffer
	cmd := exec.Command("/init", "prepare", "--config", "/etc/luoinit/config.toml", "--kernel", "/boot/bzImage", "--dry-run")
	cmd.Stdout, cmd.Stderr = ioTee(&out), ioTee(&out)
	code := 0
	if err := cmd.Run(); err != nil {
		code = exitCode(err)
	}
	fmt.Printf("\nLUOTEST:TRYAGAIN %d %s\n", code, lastLines(out.String(), 1))
	secondPrepareUnderPID1()
	os.WriteFile(eventFile("signaller", "done"), nil, 0o644)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	<-term
	os.Exit(0)
}

// secondPrepareUnderPID1: once every restart fault has played out, a
// prepare handed to PID 1 holds its sessions (--no-reboot) and a second
// one is refused; the first is then cancelled (SIGTERM) and must undo
// everything. Reports PID1_SECOND <second's exit> <its last line>.
func secondPrepareUnderPID1() {
	for _, ev := range []string{"flaky.restored", "unacked.restored", "refuser.restored", "oomed.fresh", "slow.restored", "gone.fresh"} {
		name, event, _ := strings.Cut(ev, ".")
		if !waitFile(eventFile(name, event)) {
			vmEnd("FAIL", "signaller: "+ev+" never happened")
		}
	}
	args := []string{"prepare", "--config", "/etc/luoinit/config.toml", "--kernel", vm.GuestKernel}
	var first syncBuffer
	cmd := exec.Command("/init", append(args, "--no-reboot")...)
	cmd.Stdout, cmd.Stderr = ioTee(&first), ioTee(&first)
	if err := cmd.Start(); err != nil {
		vmEnd("FAIL", err.Error())
	}
	if err := waitOutput(&first, "holding the sessions"); err != nil {
		cmd.Process.Kill()
		vmEnd("FAIL", "first prepare under PID 1: "+err.Error())
	}
	var second syncBuffer
	c2 := exec.Command("/init", append(args, "--dry-run")...)
	c2.Stdout, c2.Stderr = ioTee(&second), ioTee(&second)
	code := 0
	if err := c2.Run(); err != nil {
		code = exitCode(err)
	}
	fmt.Printf("\nLUOTEST:PID1_SECOND %d %s\n", code, lastLines(second.String(), 1))
	cmd.Process.Signal(unix.SIGTERM)
	if c := exitOf(cmd); c != 1 || !strings.Contains(first.String(), "kexec image unloaded") {
		vmEnd("FAIL", fmt.Sprintf("first prepare under PID 1 after SIGTERM: exit %d: %s", c, lastLines(first.String(), 3)))
	}
}

// faultCheckMain ends the boot once the restore is over and every fault
// of stage 2 has played out, reporting luoinit's state file.
func faultCheckMain(args []string) {
	takeHandoff("faultcheck")
	waitState("over", func(s string) bool { return s != "" && !strings.Contains(s, "state=restoring") })
	for _, ev := range args {
		name, event, _ := strings.Cut(ev, ".")
		if !waitFile(eventFile(name, event)) {
			vmEnd("FAIL", fmt.Sprintf("faultcheck: %s never happened", ev))
		}
	}
	b, _ := os.ReadFile("/run/luoinit/state")
	fmt.Printf("\nLUOTEST:STATE %s\n", strings.Join(strings.Fields(string(b)), " "))
	vmEnd("PASS", fmt.Sprintf("every fault of stage 2 played out (%s)", strings.Join(args, ", ")))
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// ioTee writes to the console and to buf.
func ioTee(buf *syncBuffer) io.Writer { return io.MultiWriter(os.Stdout, buf) }
