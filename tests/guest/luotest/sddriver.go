package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// sdDriverMain drives TestSystemdFDStore as a workload of luoinit next to
// the sdstore daemon (tests/guest/sdstore): updates live updates in a
// row. On the cold boot it waits for the daemon to have stored its fds;
// after each live update it waits for luoinit to finish the restore and
// for the daemon's verdict; then, until the last, it runs `luoinit
// prepare`, which PID 1 answers.
//
//	LUOTEST:SD_STATE <luoinit's state file, one line>
//	LUOTEST:PASS / LUOTEST:FAIL
func sdDriverMain(args []string) {
	fs := flag.NewFlagSet("sddriver", flag.ExitOnError)
	updates := fs.Int("updates", 1, "how many live updates in a row")
	fs.Parse(args)
	takeHandoff("driver")
	state := waitState("settled", func(st string) bool { return !stateIs("restoring")(st) })
	r := waitResult()
	if strings.Contains(state, "boot=normal") {
		if r != "stored" {
			vmEnd("FAIL", "sdstore did not store its fds: "+r)
		}
	} else {
		fmt.Printf("\nLUOTEST:SD_STATE %s\n", strings.ReplaceAll(strings.TrimSpace(state), "\n", " "))
		switch {
		case !strings.HasPrefix(r, "ok "):
			vmEnd("FAIL", "sdstore after the live update: "+r)
		case !stateIs("finished")(state):
			vmEnd("FAIL", "luoinit's state is not finished: "+state)
		case strings.Contains(state, fmt.Sprintf("generation=%d\n", *updates)):
			vmEnd("PASS", "sdstore got its fd store back: "+r)
		}
	}
	// Into the same image, kept at /sys/firmware/initrd (retain_initrd).
	prep := exec.Command("/bin/luoinit", "prepare", "--config", "/etc/luoinit/config.toml",
		"--kernel", "/boot/bzImage", "--reuse-cmdline", "--log-fds")
	prep.Stdout, prep.Stderr = os.Stdout, os.Stdout
	err := prep.Run()
	vmEnd("FAIL", fmt.Sprintf("luoinit prepare returned instead of rebooting: %v", err))
}

// waitResult waits for the sdstore daemon's verdict file.
func waitResult() string {
	mustFile("/run/sdstore.result")
	b, err := os.ReadFile("/run/sdstore.result")
	if err != nil {
		vmEnd("FAIL", err.Error())
	}
	return strings.TrimSpace(string(b))
}
