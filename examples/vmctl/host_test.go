package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/luoinit/luoinit/tests/qemu"
)

// The host test runs the real thing on this machine: tests/qemu's QEMU
// (fetched once into the test cache) with the firmware guest, its RAM a
// memfd this test keeps, as PID 1 keeps a workload's across a live update.
// The VM test of the whole live update (a kexec in between) is
// tests/scenarios'.

const (
	guestRAMMiB = 64
	patternMiB  = 16
	lineWait    = 30 * time.Second // for one guest line, on a loaded machine
)

var (
	setupOnce sync.Once
	hostQEMU  qemu.Install
	vmctlBin  string
	setupErr  error
	skipWhy   string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if vmctlBin != "" {
		os.RemoveAll(filepath.Dir(vmctlBin))
	}
	os.Exit(code)
}

// hostSetup fetches QEMU and builds vmctl, once; the test skips only when
// QEMU cannot be fetched.
func hostSetup(t *testing.T) (qemu.Install, string) {
	t.Helper()
	setupOnce.Do(func() {
		in, err := qemu.Fetch(qemu.DefaultCache())
		if err != nil {
			skipWhy = err.Error()
			return
		}
		hostQEMU = in
		dir, err := os.MkdirTemp("", "vmctl-test")
		if err != nil {
			setupErr = err
			return
		}
		vmctlBin = filepath.Join(dir, "vmctl")
		cmd := exec.Command("go", "build", "-o", vmctlBin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			setupErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if skipWhy != "" {
		t.Skipf("no QEMU from tests/qemu/fetch.sh: %s", skipWhy)
	}
	if setupErr != nil {
		t.Fatal(setupErr)
	}
	return hostQEMU, vmctlBin
}

// guestRAM is a memfd sealed against growing and shrinking, as PID 1 makes
// a workload's [[workload.fd]].
func guestRAM(t *testing.T) *os.File {
	t.Helper()
	fd, err := unix.MemfdCreate("guest-ram", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Fatalf("memfd_create: %v", err)
	}
	f := os.NewFile(uintptr(fd), "guest-ram")
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(guestRAMMiB << 20); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_GROW|unix.F_SEAL_SHRINK); err != nil {
		t.Fatalf("F_ADD_SEALS: %v", err)
	}
	return f
}

type vm struct {
	cmd    *exec.Cmd
	serial *qemu.Serial
	stderr *bytes.Buffer
	start  time.Time
}

// startVM starts `vmctl run` with ram at fd 3 as LISTEN_FDS passes it; a
// shell sets LISTEN_PID to its own pid and execs vmctl, which keeps it.
func startVM(t *testing.T, vmctl, state string, ram *os.File, argv []string) *vm {
	t.Helper()
	args := append([]string{"-c", `LISTEN_PID=$$ exec "$@"`, "sh", vmctl, "run", "--state", state, "--"}, argv...)
	cmd := exec.Command("/bin/sh", args...)
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "LISTEN_FDNAMES=guest-ram")
	cmd.ExtraFiles = []*os.File{ram}
	v := &vm{cmd: cmd, stderr: &bytes.Buffer{}}
	cmd.Stderr = v.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	v.start = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	v.serial = qemu.ReadSerial(stdout)
	return v
}

// counting reads n status lines that count on from last, all without a
// mismatch, and returns the last.
func (v *vm) counting(t *testing.T, last qemu.Status, n int) qemu.Status {
	t.Helper()
	for range n {
		st, skipped, err := v.serial.NextStatus(lineWait)
		if err != nil || len(skipped) > 0 {
			t.Fatalf("after count %d: %v, other lines %q; QEMU's stderr:\n%s", last.Count, err, skipped, v.stderr)
		}
		if st.Count != last.Count+1 || st.Bad != 0 || st.Passes < last.Passes {
			t.Fatalf("%+v after %+v", st, last)
		}
		last = st
	}
	return last
}

func vmctlSave(vmctl, sock, state string) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	cmd := exec.Command(vmctl, "save", "--qmp", sock, "--state", state, "--timeout", "60s")
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func TestSaveRestoreUnderQEMU(t *testing.T) {
	in, vmctl := hostSetup(t)
	dir := t.TempDir()
	fw, err := qemu.BuildFirmware(dir, patternMiB, qemu.DefaultWait)
	if err != nil {
		t.Fatal(err)
	}
	ram := guestRAM(t)
	state := filepath.Join(dir, "vm.state")
	sock := filepath.Join(dir, "qmp.sock")
	argv := in.Argv("", "-nodefaults", "-display", "none",
		"-machine", "pc,memory-backend=ram",
		"-object", fmt.Sprintf("memory-backend-file,id=ram,size=%dM,mem-path=/proc/self/fd/{fd:guest-ram},share=on", guestRAMMiB),
		"-bios", fw, "-serial", "stdio",
		"-qmp", "unix:"+sock+",server=on,wait=off",
		"-accel", "tcg,tb-size=16")
	t.Logf("QEMU %s: vmctl run --state %s -- %s", in.Version, state, strings.Join(argv, " "))

	// Cold start: the guest fills its RAM and counts.
	cold := startVM(t, vmctl, state, ram, argv)
	first, err := cold.serial.Next(lineWait)
	if err != nil {
		t.Fatalf("%v; QEMU's stderr:\n%s", err, cold.stderr)
	}
	t.Logf("cold start: first line %v after vmctl run: %s", time.Since(cold.start).Round(time.Millisecond), first)
	if mib, ok := qemu.ParseFilled(first); !ok || mib != patternMiB {
		t.Fatalf("first line %q, want the fill of %d MiB", first, patternMiB)
	}
	last := cold.counting(t, qemu.Status{}, 3)
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cold.cmd.Process.Pid))
	if err != nil || !strings.Contains(string(cmdline), "qemu-system-x86_64") {
		t.Fatalf("pid %d is not QEMU: %q, %v", cold.cmd.Process.Pid, cmdline, err)
	}
	if environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", cold.cmd.Process.Pid)); err != nil || bytes.Contains(environ, []byte("LISTEN_")) {
		t.Errorf("QEMU's environment has LISTEN_* (%v)", err)
	}

	// A save that fails leaves QEMU running and counting, and no state.
	missing := filepath.Join(dir, "missing", "vm.state")
	_, stderr, err := vmctlSave(vmctl, sock, missing)
	if err == nil {
		t.Fatal("vmctl save into a missing directory succeeded")
	}
	t.Logf("failed save: %v: %s", err, stderr)
	for _, want := range []string{"qmp " + sock + ": migrate:", "No such file or directory", "the VM runs again"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("vmctl save's error %q lacks %q", stderr, want)
		}
	}
	last = cold.counting(t, last, 2)
	if _, err := os.Stat(missing + ".tmp"); err == nil {
		t.Errorf("a failed save left %s.tmp", missing)
	}

	// A save that fails halfway, with the VM stopped for it: a file
	// system too small for the state.
	small := filepath.Join(dir, "small")
	if err := os.Mkdir(small, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", small, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatalf("mount tmpfs of 64 KiB on %s (the test needs root): %v", small, err)
	}
	t.Cleanup(func() { unix.Unmount(small, unix.MNT_DETACH) })
	_, stderr, err = vmctlSave(vmctl, sock, filepath.Join(small, "vm.state"))
	if err == nil {
		t.Fatal("vmctl save onto a full file system succeeded")
	}
	t.Logf("save onto a full file system: %v: %s", err, stderr)
	for _, want := range []string{"qmp " + sock, "No space left on device", "the VM runs again"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("vmctl save's error %q lacks %q", stderr, want)
		}
	}
	last = cold.counting(t, last, 2)
	if left, _ := os.ReadDir(small); len(left) > 0 {
		t.Errorf("a failed save left %v", left)
	}

	// The save: QEMU writes the state and quits.
	stdout, stderr, err := vmctlSave(vmctl, sock, state)
	if err != nil {
		t.Fatalf("vmctl save: %v\n%s%s", err, stdout, stderr)
	}
	if err := cold.cmd.Wait(); err != nil {
		t.Fatalf("QEMU after the save: %v\n%s", err, cold.stderr)
	}
	last, partial := drain(t, cold.serial, last)
	st, err := os.Stat(state)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: state file %d bytes for %d MiB of guest RAM; last count %d, then %q", strings.TrimSpace(stdout), st.Size(), guestRAMMiB, last.Count, partial)
	if st.Size() >= 1<<20 {
		t.Errorf("state file %d bytes: guest RAM went into it", st.Size())
	}

	// The restore, on the same memfd: the guest goes on where it was, with
	// no new fill.
	warm := startVM(t, vmctl, state, ram, argv)
	line, err := warm.serial.Next(lineWait)
	if err != nil {
		t.Fatalf("%v; QEMU's stderr:\n%s", err, warm.stderr)
	}
	t.Logf("restore: first line %v after vmctl run: %q", time.Since(warm.start).Round(time.Millisecond), line)
	resumed, ok := qemu.ParseStatus(partial + line)
	if !ok || resumed.Count != last.Count+1 || resumed.Bad != 0 || resumed.Passes < last.Passes {
		t.Fatalf("first line after the restore %q (with %q before the save), want count %d; QEMU's stderr:\n%s",
			line, partial, last.Count+1, warm.stderr)
	}
	warm.counting(t, resumed, 2)
	if _, err := os.Stat(state); err == nil {
		t.Errorf("%s still there after a restore", state)
	}
	if _, err := os.Stat(state + incomingSuffix); err != nil {
		t.Errorf("the loaded state: %v", err)
	}
}

// drain reads the serial output of a VM that quit, to its end: status
// lines that count on from last, and possibly a line the save cut short.
func drain(t *testing.T, s *qemu.Serial, last qemu.Status) (qemu.Status, string) {
	t.Helper()
	var rest []string
	for {
		l, err := s.Next(lineWait)
		if err != nil {
			break
		}
		rest = append(rest, l)
	}
	partial := ""
	for i, l := range rest {
		st, ok := qemu.ParseStatus(l)
		switch {
		case ok && st.Count == last.Count+1 && st.Bad == 0:
			last = st
		case !ok && i == len(rest)-1:
			partial = l
		default:
			t.Fatalf("line %q after count %d", l, last.Count)
		}
	}
	return last, partial
}
