package prepare

import "strings"

// Cmdline composes the next kernel's command line: the running one's
// (when reuse is set, from /proc/cmdline as current), then extra, with
// liveupdate=on and kho=on ensured and any other liveupdate= or kho=
// setting removed: without them the next kernel cannot hand anything
// back (LUO needs KHO, and KHO is on by default only in kernels built
// with CONFIG_KEXEC_HANDOVER_ENABLE_DEFAULT, which an image need not say).
func Cmdline(current string, reuse bool, extra string) string {
	var fields []string
	if reuse {
		fields = append(fields, strings.Fields(current)...)
	}
	fields = append(fields, strings.Fields(extra)...)
	out := fields[:0]
	for _, f := range fields {
		if k, _, _ := strings.Cut(f, "="); k == "liveupdate" || k == "kho" {
			continue
		}
		// BOOT_IMAGE and initrd= name files of the boot loader's world,
		// not of a kexec.
		if reuse && (strings.HasPrefix(f, "BOOT_IMAGE=") || strings.HasPrefix(f, "initrd=")) {
			continue
		}
		out = append(out, f)
	}
	return strings.Join(append(out, ensured...), " ")
}

// ensured ends every next command line.
var ensured = []string{"liveupdate=on", "kho=on"}

// Given is the command line as asked for, before Cmdline ensured
// anything: for the preflight to say what it replaced.
func Given(current string, reuse bool, extra string) string {
	if reuse {
		return strings.TrimSpace(current + " " + extra)
	}
	return extra
}
