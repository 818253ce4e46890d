package preflight

import (
	"fmt"
	"strings"

	"github.com/luoinit/luoinit/kcmdline"
)

// checkCmdline: the next command line turns LUO and KHO on.
func (r *Report) checkCmdline(o Options) {
	lu, luSet := kcmdline.Last(o.Cmdline, "liveupdate")
	kho, khoSet := kcmdline.Last(o.Cmdline, "kho")
	var bad []string
	if on, ok := kernelBool(lu); !luSet || !ok || !on {
		bad = append(bad, "liveupdate=on is missing (the next kernel would not start LUO)")
	}
	khoDefault := r.Next != nil && r.Next.Config != nil && r.Next.Config["CONFIG_KEXEC_HANDOVER_ENABLE_DEFAULT"] == "y"
	if on, ok := kernelBool(kho); khoSet && (!ok || !on) {
		bad = append(bad, fmt.Sprintf("kho=%s turns KHO off", kho))
	} else if !khoSet && !khoDefault {
		bad = append(bad, "kho=on is missing and the image does not say KHO is on by default")
	}
	if len(bad) > 0 {
		r.add("command line", Fail, "%q: %s", o.Cmdline, strings.Join(bad, "; "))
		return
	}
	var replaced []string
	given, _, _ := kcmdline.Split(o.Given)
	for _, p := range given {
		if (p.Name == "liveupdate" || p.Name == "kho") && p.Value != "on" {
			replaced = append(replaced, p.Raw)
		}
	}
	text := fmt.Sprintf("%q turns LUO and KHO on", o.Cmdline)
	if len(replaced) > 0 {
		text += fmt.Sprintf(" (luoinit replaced %s)", strings.Join(replaced, " "))
	}
	r.add("command line", OK, "%s", text)
}

// kernelBool parses a value as the kernel's kstrtobool does.
func kernelBool(v string) (on, ok bool) {
	switch strings.ToLower(v) {
	case "1", "y", "yes", "on", "t", "true", "e", "enable", "enabled":
		return true, true
	case "0", "n", "no", "off", "f", "false", "d", "disable", "disabled":
		return false, true
	}
	return false, false
}
