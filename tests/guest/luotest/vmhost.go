package main

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/luoinit/luoinit/proctree"
)

// vmHostMain drives TestVMMemory as a workload of luoinit next to a VMM
// (Debian's QEMU, started by vmctl) whose guest RAM is a memfd that PID 1
// made ([[workload.fd]] size) and keeps. It reads the guest's RAM through
// the VMM's fd of that memfd (/proc/PID/fd/N): the guest's counter, a
// 32-bit word at --counter, and the sha256 of the region the guest filled
// once at --pattern. It reports what it saw; the host judges.
//
// Cold boot: once the guest counts, a prepare with --bad-config, whose
// stop_command cannot save, must fail; then the real prepare.
//
//	LUOTEST:VM_SEEN boot=normal|updated generation=N qemu_pid=P exe=PATH exe_sha256=HEX count=N pattern_sha256=HEX
//	LUOTEST:VM_BADSAVE exit=N qemu_pid=P count_before=N count_after=N state_left=true|false
//	LUOTEST:VM_STATUS <luoinit status --json, compact> (after each update)
//	LUOTEST:VM_VERSION <qemu --version, first line>
func vmHostMain(args []string) {
	fs := flag.NewFlagSet("vmhost", flag.ExitOnError)
	updates := fs.Int("updates", 1, "how many live updates in a row")
	qemu := fs.String("qemu", "/usr/bin/qemu-system-x86_64", "the VMM's program: its process is the workload's")
	fdNum := fs.Int("fd", 3, "the VMM's fd of the guest-RAM memfd")
	counter := fs.Int64("counter", 0, "offset of the guest's 32-bit counter in its RAM")
	pattern := fs.String("pattern", "", "OFFSET:LENGTH of the region the guest filled once")
	badConfig := fs.String("bad-config", "", "a config whose stop_command fails: a prepare with it must be cancelled")
	state := fs.String("state", "", "the VMM's state file: a failed save must leave none")
	fs.Parse(args)
	patOff, patLen, err := parseRegion(*pattern)
	if err != nil {
		vmEnd("FAIL", err.Error())
	}
	st := waitState("settled", func(s string) bool { return !stateIs("restoring")(s) })
	generation := generationOf(st)
	boot := "normal"
	if strings.Contains(st, "boot=updated") {
		boot = "updated"
		reportStatus("VM_STATUS")
	} else {
		out, err := exec.Command(*qemu, "--version").Output()
		if err != nil {
			vmEnd("FAIL", fmt.Sprintf("%s --version: %v", *qemu, err))
		}
		first, _, _ := strings.Cut(string(out), "\n")
		fmt.Printf("\nLUOTEST:VM_VERSION %s\n", first)
	}
	vm := waitVMM(*qemu, *fdNum)
	vm.counter = *counter
	// The guest counts again once its count moved past the first one read.
	c0 := vm.waitCount(0, 3*time.Minute)
	count := vm.waitCount(c0+1, 3*time.Minute)
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", vm.pid))
	fmt.Printf("\nLUOTEST:VM_SEEN boot=%s generation=%d qemu_pid=%d exe=%s exe_sha256=%s count=%d pattern_sha256=%s\n",
		boot, generation, vm.pid, exe, fileSHA256(exe), count, vm.regionSHA256(patOff, patLen))
	if generation >= *updates {
		vmEnd("PASS", fmt.Sprintf("the guest counts after %d live update(s)", generation))
	}
	if boot == "normal" && *badConfig != "" {
		badSave(vm, *badConfig, *state)
	}
	prep := exec.Command("/bin/luoinit", "prepare", "--config", "/etc/luoinit/config.toml",
		"--kernel", "/boot/bzImage", "--reuse-cmdline")
	prep.Stdout, prep.Stderr = os.Stdout, os.Stdout
	err = prep.Run()
	vmEnd("FAIL", fmt.Sprintf("luoinit prepare returned instead of rebooting: %v", err))
}

// badSave runs a prepare whose stop_command fails and reports what it
// left: its exit status, the VMM's pid, the guest's count when prepare
// returned and once it moved on, and whether a state file is there.
func badSave(vm *vmm, config, state string) {
	prep := exec.Command("/bin/luoinit", "prepare", "--config", config, "--kernel", "/boot/bzImage", "--reuse-cmdline")
	prep.Stdout, prep.Stderr = os.Stdout, os.Stdout
	err := prep.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		vmEnd("FAIL", fmt.Sprintf("luoinit prepare --config %s: %v", config, err))
	}
	pid := -1
	if p, err := findVMM(vm.exe); err == nil {
		pid = p
	}
	before := vm.count()
	after := vm.waitCount(before+1, 2*time.Minute)
	_, serr := os.Stat(state)
	fmt.Printf("\nLUOTEST:VM_BADSAVE exit=%d qemu_pid=%d count_before=%d count_after=%d state_left=%v\n",
		code, pid, before, after, serr == nil)
}

func parseRegion(s string) (off, n int64, err error) {
	a, b, ok := strings.Cut(s, ":")
	if ok {
		off, err = strconv.ParseInt(a, 0, 64)
		if err == nil {
			n, err = strconv.ParseInt(b, 0, 64)
		}
	}
	if !ok || err != nil || n <= 0 {
		return 0, 0, fmt.Errorf("--pattern %q: want OFFSET:LENGTH", s)
	}
	return off, n, nil
}

// vmm is the VMM's process and its view of the guest's RAM.
type vmm struct {
	exe     string
	pid     int
	ram     *os.File
	counter int64
}

// waitVMM waits up to 3 minutes for a child of PID 1 running exe, and
// opens its fd.
func waitVMM(exe string, fd int) *vmm {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		pid, err := findVMM(exe)
		if err == nil {
			f, err := os.Open(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
			if err == nil {
				return &vmm{exe: exe, pid: pid, ram: f}
			}
		}
		if time.Now().After(deadline) {
			vmEnd("FAIL", fmt.Sprintf("no child of PID 1 runs %s with fd %d: %v", exe, fd, err))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// findVMM finds the child of PID 1 whose program is exe.
func findVMM(exe string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, err := proctree.Parent(pid); err != nil || ppid != 1 {
			continue
		}
		if t, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); t == exe {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no child of PID 1 runs %s", exe)
}

func (v *vmm) count() uint32 {
	var b [4]byte
	if _, err := v.ram.ReadAt(b[:], v.counter); err != nil {
		vmEnd("FAIL", fmt.Sprintf("reading the guest's counter at %#x: %v", v.counter, err))
	}
	return binary.LittleEndian.Uint32(b[:])
}

// waitCount waits until the guest's counter is at least n.
func (v *vmm) waitCount(n uint32, d time.Duration) uint32 {
	deadline := time.Now().Add(d)
	for {
		c := v.count()
		if c >= n && c != 0 {
			return c
		}
		if time.Now().After(deadline) {
			vmEnd("FAIL", fmt.Sprintf("the guest's counter stayed at %d for %v, want %d", c, d, n))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (v *vmm) regionSHA256(off, n int64) string {
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for done := int64(0); done < n; {
		k := min(int64(len(buf)), n-done)
		if _, err := v.ram.ReadAt(buf[:k], off+done); err != nil {
			vmEnd("FAIL", fmt.Sprintf("reading the guest's RAM at %#x: %v", off+done, err))
		}
		h.Write(buf[:k])
		done += k
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func fileSHA256(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unreadable"
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}
