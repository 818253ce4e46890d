package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/prepare"
	"github.com/luoinit/luoinit/tests/vm"
	"github.com/luoinit/luoinit/tests/vm/guest"
	"golang.org/x/sys/unix"
)

// The manifest faults: a luoinit built with the luoinittest tag runs the
// manifest it carries through `luotest manifestfilter` (named by
// LUOINIT_TEST_MANIFEST_FILTER, in prepare's environment or, for a
// prepare PID 1 answers, on the kernel command line), which changes it as
// the fault named in manifestFaultFile says.
const (
	manifestFilterEnv = "LUOINIT_TEST_MANIFEST_FILTER=/bin/luotest,manifestfilter"
	manifestFaultFile = "/run/luotest.manifest-fault"
)

// ManifestFaults are the faults of TestFaultManifest, in the order its
// boots play them (tests/scenarios/fault_test.go has their outcomes).
var manifestFaults = []string{"corrupt", "truncated", "hostile", "newer", "unsealed", "no-liveupdate"}

// setManifestFault says which fault the next manifest filter applies.
func setManifestFault(name string) error {
	return os.WriteFile(manifestFaultFile, []byte(name+"\n"), 0o644)
}

// manifestFilterMain is `luotest manifestfilter`: the manifest on stdin,
// what prepare carries instead on stdout.
func manifestFilterMain() {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	b, _ := os.ReadFile(manifestFaultFile)
	out, err := applyManifestFault(strings.TrimSpace(string(b)), string(in))
	if err != nil {
		fmt.Fprintf(os.Stderr, "manifestfilter: %v\n", err)
		os.Exit(1)
	}
	os.Stdout.WriteString(out)
}

func applyManifestFault(fault, valid string) (string, error) {
	switch fault {
	case "", "no-liveupdate":
		return valid, nil
	case "corrupt":
		return "\x7fELF\x02\x01\x01\x00garbage where a manifest was", nil
	case "truncated":
		i := strings.Index(valid, "argv = [")
		if i < 0 {
			return "", fmt.Errorf("no argv in the manifest")
		}
		return valid[:i+12], nil
	case "hostile":
		return "version = 1\nx = " + strings.Repeat("{a=", 10000) + "1" + strings.Repeat("}", 10000) + "\n", nil
	case "newer":
		return strings.Replace(valid, "version = 1", "version = 2", 1), nil
	case "unsealed":
		return prepare.TestUnsealed + valid, nil
	case "tamper":
		m, err := manifest.Parse([]byte(valid))
		if err != nil {
			return "", err
		}
		if err := tamper(m); err != nil {
			return "", err
		}
		b, err := m.Marshal()
		return string(b), err
	}
	return "", fmt.Errorf("unknown manifest fault %q", fault)
}

// manifestFaultMain runs under luoinit (PID 1) in every boot of
// TestFaultManifest. Each boot after the first came through a live update
// whose manifest had the fault manifestFaults[generation-1]: it reports
// the state file (MANIFEST_FAULT <fault> <state>), once kv has had its
// first handoff. Then, until the last fault, it arms the next one and
// runs `luoinit prepare` (PID 1 answers it; kv's arena is really
// preserved), which reboots into the next boot.
func manifestFaultMain() {
	takeHandoff("manifestfault")
	state := waitState("first handoffs over", func(st string) bool {
		return st != "" && !stateIs("restoring")(st) && strings.Contains(st, "handoff_done_ns=")
	})
	time.Sleep(500 * time.Millisecond) // kv prints FRESH or RESTORED right after its ACK
	gen := generationOf(state)
	if !strings.Contains(state, "boot=normal") {
		if gen < 1 || gen > len(manifestFaults) {
			vmEnd("FAIL", fmt.Sprintf("generation %d in a fault boot: %s", gen, state))
		}
		fmt.Printf("\nLUOTEST:MANIFEST_FAULT %s %s\n", manifestFaults[gen-1], strings.Join(strings.Fields(state), " "))
	}
	if gen == len(manifestFaults) {
		vmEnd("PASS", fmt.Sprintf("PID 1 came through each broken manifest (%s)", strings.Join(manifestFaults, ", ")))
	}
	next := manifestFaults[gen]
	if err := setManifestFault(next); err != nil {
		vmEnd("FAIL", err.Error())
	}
	fmt.Printf("\nLUOTEST:NEXT_FAULT %s\n", next)
	args := []string{"prepare", "--config", "/etc/luoinit/config.toml", "--kernel", vm.GuestKernel, "--reuse-cmdline"}
	if next == "no-liveupdate" {
		args = append(args, "--no-reboot")
	}
	var buf syncBuffer
	cmd := exec.Command(luoinitBin, args...)
	cmd.Stdout, cmd.Stderr = ioTee(&buf), ioTee(&buf)
	if err := cmd.Start(); err != nil {
		vmEnd("FAIL", err.Error())
	}
	if next == "no-liveupdate" {
		if err := withoutLiveUpdate(&buf); err != nil {
			cmd.Process.Kill()
			vmEnd("FAIL", "no-liveupdate: "+err.Error())
		}
		cmd.Process.Signal(unix.SIGUSR1)
	}
	err := cmd.Wait()
	vmEnd("FAIL", fmt.Sprintf("luoinit prepare returned instead of rebooting (%v): %s", err, lastLines(buf.String(), 5)))
}

// withoutLiveUpdate waits for a real prepare to hold its sessions, then
// loads the next kernel again with the same initramfs and command line
// but liveupdate=off: the next boot is a live update (its marker is
// there) whose state cannot come back.
func withoutLiveUpdate(buf *syncBuffer) error {
	if err := waitOutput(buf, "holding the sessions"); err != nil {
		return err
	}
	i := strings.Index(buf.String(), "command line \"")
	if i < 0 {
		return fmt.Errorf("prepare did not say the command line it loaded")
	}
	rest := buf.String()[i+len("command line "):]
	line, err := strconv.QuotedPrefix(rest)
	if err != nil {
		return err
	}
	cmdline, _ := strconv.Unquote(line)
	cmdline = strings.Replace(cmdline, "liveupdate=on", "liveupdate=off", 1)
	if err := guest.KexecLoad(vm.GuestKernel, prepare.DefaultInitrd, cmdline); err != nil {
		return err
	}
	guest.Info("loaded %s again with command line %q", vm.GuestKernel, cmdline)
	return nil
}
