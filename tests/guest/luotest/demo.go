package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/luoinit/luoinit/handoff"
	"golang.org/x/sys/unix"
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
	if _, ok := os.LookupEnv(handoff.EnvFD); ok {
		if _, err := handoff.Receive("demo", 30*time.Second); err != nil {
			demoEnd("FAIL", "demo: "+err.Error())
		}
	}
	state := waitState("restoring")
	generation := 0
	if strings.Contains(state, "boot=normal") {
		waitFile("/run/kvcache.sock")
		if out, err := kv("fill", keys); err != nil {
			demoEnd("FAIL", fmt.Sprintf("kvcache fill: %v: %s", err, out))
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
		waitFile("/run/kvcache.sock")
		out, err := kv("verify", keys)
		if err != nil {
			demoEnd("FAIL", fmt.Sprintf("kvcache verify after live update %d: %v: %s", generation, err, out))
		}
		count, _ := kv("COUNT")
		stats, _ := kv("STATS")
		fmt.Printf("\nLUOTEST:DEMO_AFTER keys=%s verified=true %s\n", strings.TrimPrefix(strings.TrimSpace(count), "COUNT "), strings.TrimSpace(stats))
		if generation >= *updates {
			demoEnd("PASS", fmt.Sprintf("every key read back after %d live update(s)", generation))
		}
	}
	// Next live update: the running root (programs, config, kernel) becomes
	// the next initramfs.
	prep := exec.Command("/bin/luoinit", "prepare", "--config", "/etc/luoinit/config.toml",
		"--kernel", "/boot/bzImage", "--initrd-from-root", "--reuse-cmdline")
	prep.Stdout, prep.Stderr = os.Stdout, os.Stdout
	if err := prep.Start(); err != nil {
		demoEnd("FAIL", err.Error())
	}
	waitFile("/run/luoinit/prepare.sock")
	if out, err := kv("PUSH"); err != nil {
		demoEnd("FAIL", fmt.Sprintf("kvcache PUSH: %v: %s", err, out))
	}
	err := prep.Wait()
	demoEnd("FAIL", fmt.Sprintf("luoinit prepare returned instead of rebooting: %v", err))
}

func kv(args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command("/bin/kvcache", append([]string{"client", "--socket", "/run/kvcache.sock"}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// waitState waits until luoinit's state file exists and says none of the
// given states, and returns it.
func waitState(not ...string) string {
	for i := 0; i < 1200; i++ {
		b, err := os.ReadFile("/run/luoinit/state")
		s := string(b)
		busy := err != nil
		for _, n := range not {
			busy = busy || strings.Contains(s, "state="+n+"\n")
		}
		if !busy {
			return s
		}
		time.Sleep(50 * time.Millisecond)
	}
	demoEnd("FAIL", "luoinit's state file never settled")
	return ""
}

func waitFile(p string) {
	for i := 0; i < 1200; i++ {
		if _, err := os.Stat(p); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	demoEnd("FAIL", p+" never appeared")
}

func demoEnd(kind, msg string) {
	fmt.Printf("\nLUOTEST:%s %s\n", kind, msg)
	unix.Kill(1, unix.SIGINT)
	time.Sleep(time.Hour)
}
