package main

import (
	"fmt"
	"os"

	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/tests/vm"
	"github.com/luoinit/luoinit/tests/vm/guest"
	"golang.org/x/sys/unix"
)

// restoreBefore is stage 1 of the restore scenarios: luotest, as PID 1 of
// the first kernel, starts the workloads of /etc/luoinit/config.toml as
// an init would, then runs luoinit prepare with a second initramfs whose
// /init is luoinit. Stage 2 is luoinit itself; the config's checker
// workload reports from there.
func restoreBefore() error {
	os.MkdirAll("/run/luoinit", 0o755)
	// As luoinit does as PID 1: room for workloads of thousands of memfds
	// (make perf's 10,000), and for prepare, which holds them all.
	lim := unix.Rlimit{Cur: 65536, Max: 65536}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("setrlimit(RLIMIT_NOFILE, 65536): %w", err)
	}
	cfg, err := manifest.LoadConfig("/etc/luoinit/config.toml")
	if err != nil {
		return err
	}
	for _, w := range cfg.Workloads {
		if len(w.FDs) == 0 {
			continue // the checker runs after the live update only
		}
		if _, err := start(w.Argv[0], w.Argv[1:]...); err != nil {
			return fmt.Errorf("starting workload %q: %w", w.Name, err)
		}
	}
	guest.Info("starting luoinit prepare at %v boot time", guest.BootTime())
	out, code, err := runPrepare("--config", "/etc/luoinit/config.toml", "--kernel", vm.GuestKernel,
		"--initrd", vm.GuestInitramfs2, "--reuse-cmdline", "--collect-timeout", "120s")
	return fmt.Errorf("luoinit prepare returned (exit %d, %v) instead of rebooting: %s", code, err, lastLines(out, 5))
}
