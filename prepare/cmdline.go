package prepare

import "strings"

// Cmdline composes the next kernel's command line: the running one's
// (when reuse is set, from /proc/cmdline as current), then extra, with
// liveupdate=on ensured and any other liveupdate= setting removed, since
// without it the next kernel cannot hand anything back.
func Cmdline(current string, reuse bool, extra string) string {
	var fields []string
	if reuse {
		fields = append(fields, strings.Fields(current)...)
	}
	fields = append(fields, strings.Fields(extra)...)
	out := fields[:0]
	for _, f := range fields {
		if f == "liveupdate" || strings.HasPrefix(f, "liveupdate=") {
			continue
		}
		// BOOT_IMAGE and initrd= name files of the boot loader's world,
		// not of a kexec.
		if reuse && (strings.HasPrefix(f, "BOOT_IMAGE=") || strings.HasPrefix(f, "initrd=")) {
			continue
		}
		out = append(out, f)
	}
	return strings.Join(append(out, "liveupdate=on"), " ")
}
