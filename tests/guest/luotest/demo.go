package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// demoMain drives `make demo` as a workload of luoinit. On the cold boot
// it fills kvcache, starts luoinit prepare and has kvcache push its arena;
// prepare then stops kvcache and kexecs. After the live update it waits for
// luoinit to finish the restore, reads every key back and reports.
//
//	LUOTEST:DEMO_BEFORE keys=N
//	LUOTEST:DEMO_AFTER keys=N verified=true
//	LUOTEST:DEMO_STATE <luoinit's state file, one line>
func demoMain(args []string) {
	fs := flag.NewFlagSet("demo", flag.ExitOnError)
	updates := fs.Int("updates", 1, "how many live updates in a row")
	fs.Parse(args)
	const keys = "1000"
	takeHandoff("demo")
	settled := func(st string) bool { return !stateIs("restoring")(st) }
	state := waitState("settled", settled)
	generation := 0
	if strings.Contains(state, "boot=normal") {
		mustFile("/run/kvcache.sock")
		if out, err := kv("fill", keys); err != nil {
			vmEnd("FAIL", fmt.Sprintf("kvcache fill: %v: %s", err, out))
		}
		out, _ := kv("COUNT")
		fmt.Printf("\nLUOTEST:DEMO_BEFORE keys=%s\n", strings.TrimPrefix(strings.TrimSpace(out), "COUNT "))
	} else {
		fmt.Printf("\nLUOTEST:DEMO_STATE %s\n", strings.ReplaceAll(strings.TrimSpace(state), "\n", " "))
		for _, kv := range strings.Fields(state) {
			if v, ok := strings.CutPrefix(kv, "generation="); ok {
				generation, _ = strconv.Atoi(v)
			}
		}
		mustFile("/run/kvcache.sock")
		out, err := kv("verify", keys)
		if err != nil {
			vmEnd("FAIL", fmt.Sprintf("kvcache verify after live update %d: %v: %s", generation, err, out))
		}
		count, _ := kv("COUNT")
		stats, _ := kv("STATS")
		fmt.Printf("\nLUOTEST:DEMO_AFTER keys=%s verified=true %s\n", strings.TrimPrefix(strings.TrimSpace(count), "COUNT "), strings.TrimSpace(stats))
		if generation >= *updates {
			vmEnd("PASS", fmt.Sprintf("every key read back after %d live update(s)", generation))
		}
	}
	// Next live update: the running root (programs and config; the kernel
	// image only if another update follows) becomes the next initramfs.
	prepArgs := []string{"prepare", "--config", "/etc/luoinit/config.toml",
		"--kernel", "/boot/bzImage", "--initrd-from-root", "--reuse-cmdline"}
	if generation+1 < *updates {
		// Another live update follows from the next root: it needs the
		// kernel image, which prepare leaves out by default.
		prepArgs = append(prepArgs, "--initrd-keep-kernel")
	}
	prep := exec.Command("/bin/luoinit", prepArgs...)
	prep.Stdout, prep.Stderr = os.Stdout, os.Stdout
	if err := prep.Start(); err != nil {
		vmEnd("FAIL", err.Error())
	}
	mustFile("/run/luoinit/prepare.sock")
	if out, err := kv("PUSH"); err != nil {
		vmEnd("FAIL", fmt.Sprintf("kvcache PUSH: %v: %s", err, out))
	}
	err := prep.Wait()
	vmEnd("FAIL", fmt.Sprintf("luoinit prepare returned instead of rebooting: %v", err))
}

func kv(args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command("/bin/kvcache", append([]string{"client", "--socket", "/run/kvcache.sock"}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func mustFile(p string) {
	if !waitFile(p) {
		vmEnd("FAIL", p+" never appeared")
	}
}
