// Package guest is the inside half of the VM harness: helpers for a test
// program that runs as PID 1 in a VM guest and reports through the marker
// lines that package vm reads from the serial console.
//
//	func main() {
//		defer guest.Recover()
//		guest.Setup()
//		if err := run(); err != nil {
//			guest.Fail("%v", err)
//		}
//		guest.Pass("all good")
//	}
//
// Pass and Fail end the VM (reboot(RESTART); the harness runs QEMU with
// -no-reboot) and do not return.
package guest

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/boot/kexec"
	"github.com/u-root/u-root/pkg/cmdline"
	"golang.org/x/sys/unix"
)

const prefix = "LUOTEST:"

func marker(kind, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	// One marker per line: a message with newlines would be cut short.
	msg = strings.ReplaceAll(msg, "\n", " | ")
	fmt.Fprintf(os.Stdout, "\n%s%s %s\n", prefix, kind, msg)
}

// Info prints a progress marker.
func Info(format string, args ...any) { marker("INFO", format, args...) }

// Mark prints a marker of a scenario's own kind (upper case).
func Mark(kind, format string, args ...any) { marker(kind, format, args...) }

// Pass reports success and ends the VM.
func Pass(format string, args ...any) {
	marker("PASS", format, args...)
	end()
}

// Fail reports failure with the reason and ends the VM.
func Fail(format string, args ...any) {
	marker("FAIL", format, args...)
	end()
}

// Recover turns a panic in the guest program into a FAIL marker; a panic
// escaping PID 1 would only show as a kernel panic.
func Recover() {
	if r := recover(); r != nil {
		Fail("guest panic: %v: %s", r, debug.Stack())
	}
}

func end() {
	unix.Sync()
	// Give the serial line a moment to drain before the machine goes.
	time.Sleep(100 * time.Millisecond)
	unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	// Not reached unless reboot failed; PID 1 must not exit.
	for {
		time.Sleep(time.Hour)
	}
}

// Setup mounts what a test needs: /proc, /sys and devtmpfs on /dev.
// Something already mounted is fine.
func Setup() {
	for _, m := range []struct{ src, dst, fstype string }{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"devtmpfs", "/dev", "devtmpfs"},
		{"tmpfs", "/tmp", "tmpfs"},
	} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.fstype, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			Fail("mount(%q, %q, %q): %v", m.src, m.dst, m.fstype, err)
		}
	}
}

// Flag returns the value of key=value on the kernel command line.
func Flag(key string) string {
	v, _ := cmdline.Flag(key)
	return v
}

// Stage returns the luotest.stage flag: "1" on the first boot, what the
// guest passed to Kexec after it.
func Stage() string {
	if s := Flag("luotest.stage"); s != "" {
		return s
	}
	return "1"
}

// NextCmdline returns the running kernel's command line with
// luotest.stage set to stage.
func NextCmdline(stage string) string {
	var out []string
	for _, f := range strings.Fields(cmdline.FullCmdLine()) {
		if !strings.HasPrefix(f, "luotest.stage=") {
			out = append(out, f)
		}
	}
	return strings.Join(append(out, "luotest.stage="+stage), " ")
}

// Kexec loads kernel and initramfs with kexec_file_load and reboots into
// them with reboot(LINUX_REBOOT_CMD_KEXEC). It returns only on failure.
func Kexec(kernel, initrd, cmd string) error {
	if err := KexecLoad(kernel, initrd, cmd); err != nil {
		return err
	}
	unix.Sync()
	return kexec.Reboot()
}

// KexecLoad loads kernel and initramfs with kexec_file_load, for a reboot
// into them later.
func KexecLoad(kernel, initrd, cmd string) error {
	k, err := os.Open(kernel)
	if err != nil {
		return err
	}
	defer k.Close()
	i, err := os.Open(initrd)
	if err != nil {
		return err
	}
	defer i.Close()
	if err := kexec.FileLoad(k, i, cmd); err != nil {
		return fmt.Errorf("kexec_file_load(%s, %s, %q): %w", kernel, initrd, cmd, err)
	}
	return nil
}

// BootTime returns CLOCK_BOOTTIME: time since this kernel started.
func BootTime() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return time.Duration(ts.Nano())
}
