package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// luoFaultSteps are the faults TestLUOFaults has the next kernel inject,
// one live update each, by its command line (tests/kernel/luo-faults.patch):
// the parameters for the update into generation i+1.
var luoFaultSteps = []string{
	// RETRIEVE_FD of kv's second fd fails; FINISH of kv's session fails
	// twice, then works.
	"luo_fault_session=luoinit.kv luo_fault_token=2 luo_fault_finish=2",
	// FINISH of kw's session fails every time: its memfd stays preserved,
	// and the next update drops it (optional) with EBUSY explained.
	"luo_fault_session=luoinit.kw luo_fault_finish=100",
	// The incoming sessions cannot be deserialised: /dev/liveupdate EIO,
	// at every open, for the rest of the boot.
	"luo_fault_deserialize=1",
}

// luoFaultsMain drives TestLUOFaults as a workload of luoinit: on each
// boot it waits until the restore is over, reports luoinit's state file
// and status, and runs `luoinit prepare` into the faults kernel with the
// next step's parameters added to this boot's command line (its own
// luo_fault_* and luoinit.update= left out).
//
//	LUOTEST:LUOFAULT_STATE <state file, one line>
//	LUOTEST:LUOFAULT_STATUS <luoinit status --json>
func luoFaultsMain(args []string) {
	takeHandoff("driver")
	state := waitState("settled", func(st string) bool { return !stateIs("restoring")(st) })
	// The handoffs and FINISHes are over once every workload is back.
	time.Sleep(2 * time.Second)
	state = waitState("settled", func(st string) bool { return !stateIs("restoring")(st) })
	fmt.Printf("\nLUOTEST:LUOFAULT_STATE %s\n", strings.Join(strings.Fields(state), " "))
	reportStatus("LUOFAULT_STATUS")
	gen := generationOf(state)
	if gen >= len(luoFaultSteps) {
		// The kernel refuses every open of /dev/liveupdate after it
		// failed to deserialise: a dry run of the next update shows it.
		prep := exec.Command("/bin/luoinit", "prepare", "--config", "/etc/luoinit/config.toml",
			"--kernel", "/boot/bzImage-faults", "--reuse-cmdline", "--dry-run")
		out, err := prep.CombinedOutput()
		os.Stdout.Write(out)
		code := 0
		if err != nil {
			code = -1
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
		}
		fmt.Printf("\nLUOTEST:LUOFAULT_NEXT exit=%d\n", code)
		vmEnd("PASS", fmt.Sprintf("%d live updates into the faults kernel reported", gen))
	}
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		vmEnd("FAIL", err.Error())
	}
	var keep []string
	for _, f := range strings.Fields(string(b)) {
		if strings.HasPrefix(f, "luo_fault_") || strings.HasPrefix(f, "luoinit.update=") {
			continue
		}
		keep = append(keep, f)
	}
	keep = append(keep, luoFaultSteps[gen])
	prep := exec.Command("/bin/luoinit", "prepare", "--config", "/etc/luoinit/config.toml",
		"--kernel", "/boot/bzImage-faults", "--append", strings.Join(keep, " "))
	prep.Stdout, prep.Stderr = os.Stdout, os.Stdout
	err = prep.Run()
	vmEnd("FAIL", fmt.Sprintf("luoinit prepare returned instead of rebooting: %v", err))
}
