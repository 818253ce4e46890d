// Package pid1 is what luoinit needs to be a correct PID 1 in the
// initramfs of a kernel booted through kexec: one logger (kmsg and the
// console), the early mounts, signal meanings, the only reaper of the
// process, and the two ways PID 1 ends (Fatal, Shutdown), neither of which
// returns:
//
//	log := pid1.NewLogger(os.Getpid() == 1)
//	pid1.HandleSignals(log, func(a pid1.Action) { pid1.Shutdown(log, nil, a, 10*time.Second) })
//	r := pid1.NewReaper(log) // the only wait4 of the process: every child goes through r.Start
//	pid1.Guard(log, func() error { return run(log, r) }) // MountAll, r.Start, ...
//	// not reached: Guard calls Fatal on an error or a panic, and blocks otherwise
//
// Order matters. Signals come first (NewLogger opens nothing before its
// first line) because the Go runtime, not the kernel, decides what an
// unhandled SIGTERM does to PID 1 (see HandleSignals). The Reaper comes
// before the first child, and no code in the process may start children
// any other way (os/exec included): its wait4(-1) would take their exit
// statuses. MountAll comes before anything that needs /proc, /dev or /run.
package pid1
