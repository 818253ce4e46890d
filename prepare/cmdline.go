package prepare

import (
	"fmt"
	"strings"

	"github.com/u-root/u-root/pkg/cmdline"

	"github.com/luoinit/luoinit/carry"
	"github.com/luoinit/luoinit/kcmdline"
)

// Cmdline composes the next kernel's command line: the running one's
// (when reuse is set, from /proc/cmdline as current), then extra, with
// liveupdate=on, kho=on and the live update marker
// luoinit.update=generation ensured and any other setting of the three
// removed. Without the first two the next kernel cannot hand anything
// back (LUO needs KHO, and KHO is on by default only in kernels built
// with CONFIG_KEXEC_HANDOVER_ENABLE_DEFAULT, which an image need not say);
// the marker tells PID 1 that this boot is a live update, so that one
// whose state did not come back is never taken for a cold boot.
// The three come last among the kernel's parameters, so they win: before a
// "--" and the arguments for init that follow it, which are kept as they
// are. A quoted parameter ("a b" or a="b c") stays one parameter.
func Cmdline(current string, reuse bool, extra string, generation uint64) string {
	line := extra
	remove := []string{"liveupdate", "kho", carry.UpdateParam}
	if reuse {
		line = current + " " + extra
		// BOOT_IMAGE and initrd= name files of the boot loader's world,
		// not of a kexec.
		remove = append(remove, "BOOT_IMAGE", "initrd")
	}
	kernel, init, hasInit := kcmdline.Cut(line)
	// u-root's filter splits on white space outside quotes, as the
	// kernel does (it also takes ' for a quote, which at worst keeps a
	// setting that the ensured ones, coming last, override).
	ensured := fmt.Sprintf("liveupdate=on kho=on %s=%d", carry.UpdateParam, generation)
	next := cmdline.NewUpdateFilter(ensured, remove, nil).Update(&cmdline.CmdLine{}, kernel)
	next = strings.TrimSpace(next)
	if hasInit {
		next = strings.TrimSpace(next + " -- " + strings.TrimSpace(init))
	}
	return next
}

// Given is the command line as asked for, before Cmdline ensured
// anything: for the preflight to say what it replaced.
func Given(current string, reuse bool, extra string) string {
	if reuse {
		return strings.TrimSpace(current + " " + extra)
	}
	return extra
}
