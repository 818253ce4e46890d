// Command luoinit is the userspace of Linux kernel live update: run as a
// command it prepares a live update and builds initramfs images; run as
// PID 1 of the next kernel's initramfs it restores what was preserved.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/luoinit/luoinit/notify"
)

func main() {
	// The LISTEN_PID shim comes first: PID 1 runs it (as a child) to start
	// a workload that gets its fd store in sd_listen_fds style.
	if len(os.Args) > 1 && os.Args[1] == notify.ExecListenArg {
		err := notify.ExecListen(os.Args[2:])
		fmt.Fprintf(os.Stderr, "luoinit: %v\n", err)
		os.Exit(127)
	}
	if os.Getpid() == 1 {
		pid1Main() // never returns
	}
	if err := run(os.Args[1:]); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(os.Stderr, "luoinit: %v\nRun 'luoinit --help' for usage.\n", err)
			os.Exit(2)
		}
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		fmt.Fprintf(os.Stderr, "luoinit: %v\n", err)
		os.Exit(1)
	}
}
