package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// sdDriverMain drives TestSystemdFDStore as a workload of luoinit next to
// the sdstore daemon (tests/guest/sdstore). On the cold boot it waits for
// the daemon to have stored its fds, then runs `luoinit prepare
// --initrd-from-root`, which PID 1 answers; after the live update it
// waits for luoinit to finish the restore and for the daemon's verdict.
//
//	LUOTEST:SD_STATE <luoinit's state file, one line>
//	LUOTEST:PASS / LUOTEST:FAIL
func sdDriverMain() {
	takeHandoff("driver")
	state := waitState("settled", func(st string) bool { return !stateIs("restoring")(st) })
	if strings.Contains(state, "boot=normal") {
		if r := waitResult(); r != "stored" {
			vmEnd("FAIL", "sdstore did not store its fds: "+r)
		}
		prep := exec.Command("/bin/luoinit", "prepare", "--config", "/etc/luoinit/config.toml",
			"--kernel", "/boot/bzImage", "--initrd-from-root", "--reuse-cmdline")
		prep.Stdout, prep.Stderr = os.Stdout, os.Stdout
		err := prep.Run()
		vmEnd("FAIL", fmt.Sprintf("luoinit prepare returned instead of rebooting: %v", err))
	}
	fmt.Printf("\nLUOTEST:SD_STATE %s\n", strings.ReplaceAll(strings.TrimSpace(state), "\n", " "))
	r := waitResult()
	switch {
	case !strings.HasPrefix(r, "ok "):
		vmEnd("FAIL", "sdstore after the live update: "+r)
	case !stateIs("finished")(state):
		vmEnd("FAIL", "luoinit's state is not finished: "+state)
	}
	vmEnd("PASS", "sdstore got its fd store back: "+r)
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
