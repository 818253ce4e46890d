// Package vm boots a luoinit VM test guest in QEMU and turns what the
// guest prints on its serial console into a result.
//
//	k, err := vm.FindKernel()
//	res, err := vm.Run(ctx, vm.Config{Kernel: k.BzImage, Initramfs: img,
//		Append: "liveupdate=on luotest.scenario=proof", Log: t.Logf})
//	if !res.Passed { t.Fatal(res.Message) }
//
// The guest speaks through marker lines (see package tests/vm/guest):
//
//	LUOTEST:INFO <text>     progress, shown in the log and kept in Result.Markers
//	LUOTEST:STAGE <n>       the guest reached stage n (stage 2 runs after the kexec)
//	LUOTEST:PASS <text>     the scenario passed
//	LUOTEST:FAIL <text>     the scenario failed; <text> is the guest's own reason
//
// A kernel panic, QEMU ending without PASS or FAIL, or the timeout is a
// failure too. The guest ends the VM with reboot(RESTART): QEMU runs with
// -no-reboot, so that ends QEMU.
package vm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MarkerPrefix starts every line the guest prints for the harness.
const MarkerPrefix = "LUOTEST:"

// Marker is one marker line, with the host's time since QEMU started.
type Marker struct {
	At   time.Duration
	Kind string // INFO, STAGE, PASS, FAIL, or a scenario's own kind
	Text string
}

// Config describes one VM run.
type Config struct {
	Kernel    string        // bzImage
	Initramfs string        // initramfs image
	Append    string        // extra kernel command line; console=ttyS0, panic=-1, no_timer_check and retain_initrd are always set
	MemoryMB  int           // default 1024
	CPUs      int           // default 2
	Timeout   time.Duration // default 5 minutes
	// Log receives every console line as it arrives, prefixed with the
	// host time since start. nil discards.
	Log func(format string, args ...any)
	// QEMU is the emulator binary; default qemu-system-x86_64. Tests of
	// the harness itself substitute a script.
	QEMU string
	// Accel is "kvm", "tcg" or "" for the result of ProbeAccel.
	Accel string
	// Disks are attached as virtio disks, in order.
	Disks []Disk
}

// Result is what a VM run showed.
type Result struct {
	Passed   bool
	Message  string   // the guest's PASS or FAIL text, or why the run failed
	Markers  []Marker // every marker, in order
	Boots    int      // how many kernels started ("Linux version" lines)
	Panic    string   // the kernel panic line, if any
	TimedOut bool
	Elapsed  time.Duration
	Console  []string // every console line
	// Stamps are when each console line was read, from QEMU's start (the
	// host's clock): Stamps[i] is Console[i]'s.
	Stamps []time.Duration
	Accel  string
}

// BootConsoles splits the console into one part per kernel booted, each
// from its "Linux version" line on (what came before the first is left
// out).
func (r *Result) BootConsoles() [][]string {
	var out [][]string
	for _, line := range r.Console {
		if strings.Contains(line, "Linux version ") {
			out = append(out, nil)
		}
		if len(out) > 0 {
			out[len(out)-1] = append(out[len(out)-1], line)
		}
	}
	return out
}

// Find returns the markers of one kind.
func (r *Result) Find(kind string) []Marker {
	var out []Marker
	for _, m := range r.Markers {
		if m.Kind == kind {
			out = append(out, m)
		}
	}
	return out
}

// ParseMarker parses a console line. The marker may follow other output
// on the same line (kernel messages interleave with the guest's).
func ParseMarker(line string) (Marker, bool) {
	i := strings.Index(line, MarkerPrefix)
	if i < 0 {
		return Marker{}, false
	}
	rest := strings.TrimRight(line[i+len(MarkerPrefix):], "\r\n")
	kind, text, _ := strings.Cut(rest, " ")
	if !validKind(kind) {
		return Marker{}, false
	}
	return Marker{Kind: kind, Text: text}, true
}

// validKind reports whether s is a marker kind: [A-Z][A-Z0-9_]*.
func validKind(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// panicLine reports whether a console line says the kernel panicked.
func panicLine(line string) bool {
	return strings.Contains(line, "Kernel panic - not syncing")
}

// Args returns QEMU's command line for cfg (defaults filled in).
func (cfg Config) Args() []string {
	mem, cpus := cfg.MemoryMB, cfg.CPUs
	if mem == 0 {
		mem = 1024
	}
	if cpus == 0 {
		cpus = 2
	}
	args := []string{
		"-machine", "pc,accel=" + cfg.Accel,
		"-m", fmt.Sprint(mem),
		"-smp", fmt.Sprint(cpus),
		"-kernel", cfg.Kernel,
		// no_timer_check: under emulation on a loaded host the kernel's
		// IO-APIC timer check can miss its ticks and panic the boot
		// ("IO-APIC + timer doesn't work!"); the timer works.
		// retain_initrd: the kernel keeps its initramfs at
		// /sys/firmware/initrd, the image `luoinit prepare` loads into the
		// next kernel when given no --initrd.
		"-append", strings.TrimSpace("console=ttyS0 panic=-1 loglevel=6 no_timer_check retain_initrd " + cfg.Append),
		"-display", "none",
		"-serial", "stdio",
		"-monitor", "none",
		"-nic", "none",
		"-no-reboot",
	}
	if cfg.Accel == "kvm" {
		args = append(args, "-cpu", "host")
	} else {
		args = append(args, "-cpu", "max")
	}
	if cfg.Initramfs != "" {
		args = append(args, "-initrd", cfg.Initramfs)
	}
	for _, d := range cfg.Disks {
		args = append(args, d.args()...)
	}
	return args
}

// Run boots the VM and waits for a result. The error is for a run that
// could not be made (QEMU missing, files missing); a guest that failed is
// a Result with Passed false.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.QEMU == "" {
		cfg.QEMU = "qemu-system-x86_64"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	for _, f := range []string{cfg.Kernel, cfg.Initramfs} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("vm: %w", err)
		}
	}
	if cfg.Accel == "" {
		cfg.Accel = ProbeAccel(ctx, cfg.QEMU, cfg.Kernel)
	}

	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, cfg.QEMU, cfg.Args()...)
	// QEMU and anything it started share a process group that the timeout
	// kills as a whole, so a stray child cannot hold the console open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// An *os.File as stdout: Wait does not close our read end, so nothing
	// QEMU printed just before it exited is lost.
	stdout, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	defer stdout.Close()
	cmd.Stdout = w
	cmd.Stderr = w // QEMU's own complaints belong in the log too
	start := time.Now()
	err = cmd.Start()
	w.Close()
	if err != nil {
		return nil, fmt.Errorf("vm: starting %s: %w", cfg.QEMU, err)
	}
	cfg.Log("vm: %s %s", cfg.QEMU, strings.Join(cfg.Args(), " "))

	res := &Result{Accel: cfg.Accel}
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			at := time.Since(start)
			line := strings.TrimRight(sc.Text(), "\r")
			cfg.Log("[%7.3fs] %s", at.Seconds(), line)
			mu.Lock()
			res.Console = append(res.Console, line)
			res.Stamps = append(res.Stamps, at)
			if strings.Contains(line, "Linux version ") {
				res.Boots++
			}
			if panicLine(line) && res.Panic == "" {
				res.Panic = line
			}
			if m, ok := ParseMarker(line); ok {
				m.At = at
				res.Markers = append(res.Markers, m)
			}
			mu.Unlock()
			if panicLine(line) {
				// panic=-1 reboots, and -no-reboot ends QEMU; do not wait
				// for it if the kernel is stuck.
				time.AfterFunc(3*time.Second, cancel)
			}
		}
	}()
	waitErr := cmd.Wait()
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // leftovers of the group, if any
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		stdout.Close()
		<-done
	}
	res.Elapsed = time.Since(start)
	res.TimedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
	judge(res, waitErr, cfg.Timeout)
	return res, nil
}

// judge turns what was seen into Passed and Message.
func judge(res *Result, waitErr error, timeout time.Duration) {
	var pass, fail *Marker
	for i := range res.Markers {
		switch res.Markers[i].Kind {
		case "PASS":
			if pass == nil {
				pass = &res.Markers[i]
			}
		case "FAIL":
			if fail == nil {
				fail = &res.Markers[i]
			}
		}
	}
	switch {
	case fail != nil:
		res.Message = "guest: " + fail.Text
	case res.Panic != "":
		res.Message = "kernel panic: " + strings.TrimSpace(res.Panic)
	case pass != nil:
		res.Passed = true
		res.Message = pass.Text
	case res.TimedOut:
		res.Message = fmt.Sprintf("timed out after %v without a result (last console line: %q)", timeout, lastLine(res.Console))
	case waitErr != nil:
		res.Message = fmt.Sprintf("QEMU failed: %v (last console line: %q)", waitErr, lastLine(res.Console))
	default:
		res.Message = fmt.Sprintf("the VM ended without a result (last console line: %q)", lastLine(res.Console))
	}
}

func lastLine(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.TrimSpace(lines[i]) != "" {
			return lines[i]
		}
	}
	return ""
}

var (
	probeOnce  sync.Once
	probeAccel string
)

// ProbeAccel picks the accelerator: "kvm" only if /dev/kvm is usable and a
// guest under KVM prints its first kernel line within a few seconds (on
// some hosts a KVM guest hangs before that), else "tcg". $LUOINIT_VM_ACCEL
// overrides it. The probe runs once per process.
func ProbeAccel(ctx context.Context, qemu, kernel string) string {
	if a := os.Getenv("LUOINIT_VM_ACCEL"); a == "kvm" || a == "tcg" {
		return a
	}
	probeOnce.Do(func() {
		probeAccel = "tcg"
		f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
		if err != nil {
			return
		}
		f.Close()
		ctx, cancel := context.WithTimeout(ctx, 8*time.Second)
		defer cancel()
		cfg := Config{Kernel: kernel, Accel: "kvm", MemoryMB: 256, CPUs: 1}
		cmd := exec.CommandContext(ctx, qemu, cfg.Args()...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			return
		}
		if err := cmd.Start(); err != nil {
			return
		}
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Linux version ") {
				probeAccel = "kvm"
				break
			}
		}
		cancel()
		io.Copy(io.Discard, out)
		cmd.Wait()
	})
	return probeAccel
}
