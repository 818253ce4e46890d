// Command vmctl starts a QEMU whose guest RAM is a passed memfd and saves
// it with QEMU's cpr-reboot migration mode, so that the guest goes on
// across a live update: the memfd keeps the RAM, a small state file keeps
// the rest (CPU and device state, firmware).
//
//	vmctl run --state FILE [--fd-name NAME]... -- QEMU-ARGV...
//	vmctl save --qmp SOCKET --state FILE [--timeout D]
//
// run takes fds as sd_listen_fds(3) passes them (LISTEN_FDS,
// LISTEN_FDNAMES, LISTEN_PID; fds from 3), replaces each {fd:NAME} in
// QEMU's argv with the number of the fd named NAME, and execs QEMU in its
// own place (the same pid). If FILE exists it is renamed FILE.incoming
// and QEMU loads it at start and runs the guest on from where it was
// saved. save tells QEMU (over QMP) to write that state and quit; a save
// that fails leaves the VM running and no state file.
//
// A save into a directory that does not exist fails in QEMU's migrate:
// that is how a test makes a save fail on purpose.
//
// QEMU's guest RAM must be shared memory the next QEMU maps again, e.g.
//
//	-machine pc,memory-backend=ram
//	-object memory-backend-file,id=ram,size=64M,mem-path=/proc/self/fd/{fd:guest-ram},share=on
//
// and QEMU must be 8.2 or later (cpr-reboot). CGO_ENABLED=0 go build gives
// a static binary.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

const usage = `usage:
  vmctl run --state FILE [--fd-name NAME]... -- QEMU-ARGV...
  vmctl save --qmp SOCKET --state FILE [--timeout D]

run: exec QEMU-ARGV in vmctl's place (same pid). Each {fd:NAME} in it
becomes the number of the fd passed as NAME in sd_listen_fds(3) style
(LISTEN_FDS, LISTEN_FDNAMES; LISTEN_PID, if set, must be vmctl's pid).
Those fds and the ones named by --fd-name must have been passed; QEMU
inherits them, and LISTEN_* are cleared from its environment. If FILE
exists, it is renamed FILE.incoming and QEMU loads it at start
(-incoming file:FILE.incoming with x-ignore-shared and mode cpr-reboot),
then runs the guest on; otherwise QEMU starts cold. (The rename comes
first so that a QEMU that dies loading a state does not load it again.)

save: over the QMP socket, set capability x-ignore-shared and mode
cpr-reboot, migrate to FILE.tmp (QEMU stops the VM for it), wait for
the migration to complete, fsync FILE.tmp, rename it to FILE, fsync the
directory, make QEMU quit and wait until it closes the socket, and print
"vmctl: saved state: N bytes in FILE ...". Shared guest RAM stays out
of the state. --timeout D bounds the whole save (default 30s). On
failure or timeout (then the migration is cancelled) no state file is
left, the VM runs again if it ran before (QEMU resumes it after most
failures, vmctl sends cont otherwise), and vmctl exits 1 with the
reason, QEMU's error text included. A test can make a save fail on
purpose with --state in a directory that does not exist: QEMU's
migrate then fails.

Exit status: 0 done, 1 failed, 2 bad usage.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks an error in the command line (exit status 2).
var errUsage = errors.New("bad usage")

// run is the whole command; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	err := dispatch(args, stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "vmctl: %v (vmctl --help tells more)\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "vmctl: %v\n", err)
		return 1
	}
}

func dispatch(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: no subcommand", errUsage)
	}
	switch args[0] {
	case "run":
		cfg, err := parseRun(args[1:])
		if err != nil {
			return err
		}
		return runVM(cfg)
	case "save":
		cfg, err := parseSave(args[1:])
		if err != nil {
			return err
		}
		return save(context.Background(), cfg, stdout, stderr)
	case "-h", "-help", "--help", "help":
		return flag.ErrHelp
	}
	return fmt.Errorf("%w: unknown subcommand %q", errUsage, args[0])
}

// newFlags is a flag set that reports errors to run, not to stderr.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("vmctl "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parseRun(args []string) (runConfig, error) {
	var cfg runConfig
	fs := newFlags("run")
	fs.StringVar(&cfg.state, "state", "", "")
	fs.Func("fd-name", "", func(s string) error {
		cfg.fdNames = append(cfg.fdNames, s)
		return nil
	})
	if err := parse(fs, args); err != nil {
		return cfg, err
	}
	if cfg.state == "" {
		return cfg, fmt.Errorf("%w: run needs --state FILE", errUsage)
	}
	// flag stops at "--" and drops it; anything before it that is not a
	// flag is an error, so that a QEMU argv without -- is not half taken.
	cfg.argv = fs.Args()
	if len(args) < len(cfg.argv)+1 || args[len(args)-len(cfg.argv)-1] != "--" {
		return cfg, fmt.Errorf("%w: run wants -- before QEMU's command line", errUsage)
	}
	if len(cfg.argv) == 0 {
		return cfg, fmt.Errorf("%w: no QEMU command line after --", errUsage)
	}
	return cfg, nil
}

func parseSave(args []string) (saveConfig, error) {
	cfg := saveConfig{poll: 20 * time.Millisecond}
	fs := newFlags("save")
	fs.StringVar(&cfg.qmp, "qmp", "", "")
	fs.StringVar(&cfg.state, "state", "", "")
	fs.DurationVar(&cfg.timeout, "timeout", 30*time.Second, "")
	if err := parse(fs, args); err != nil {
		return cfg, err
	}
	switch {
	case cfg.qmp == "" || cfg.state == "":
		return cfg, fmt.Errorf("%w: save needs --qmp SOCKET and --state FILE", errUsage)
	case fs.NArg() > 0:
		return cfg, fmt.Errorf("%w: save takes no arguments, got %q", errUsage, fs.Args())
	case cfg.timeout <= 0:
		return cfg, fmt.Errorf("%w: --timeout %v: want a positive duration", errUsage, cfg.timeout)
	}
	return cfg, nil
}

// parse parses args into fs; a flag error is a usage error, --help is
// flag.ErrHelp.
func parse(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return fmt.Errorf("%w: %s: %v", errUsage, fs.Name(), err)
	}
	return err
}
