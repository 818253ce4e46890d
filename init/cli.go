package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
)

// usageError is a mistake on the command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// exitError ends with a status after the command printed what it had to.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

const topUsage = `luoinit: Linux kernel live update (LUO) userspace

Usage:
  luoinit prepare --config FILE --kernel BZIMAGE [--initrd IMG] [options]
      Preserve the workloads' fds in LUO sessions, seal the manifest into
      luoinit's own session, load the next kernel with the initramfs as it
      is and reboot into it.
  luoinit preflight --kernel BZIMAGE [--append ARGS] [--reuse-cmdline]
      Check that a live update into BZIMAGE would keep the state (prepare
      runs the same checks first); touches nothing.
  luoinit initramfs build -o OUT [--config FILE] [--file SRC:DST]...
      Build a reproducible initramfs with this (static) luoinit as /init,
      once, at image build time: every live update boots it as it is.
  luoinit initramfs append -o OUT --base IMG --file SRC:DST...
      Write IMG (compressed or not) followed by an archive of the files.
  luoinit manifest check FILE
      Validate a manifest; exit 1 and list every problem with its line.
  luoinit manifest show [FILE]
      Print a readable summary of a manifest (default: the copy PID 1 wrote
      after the last live update, /run/luoinit/manifest.toml).
  luoinit status [--json] [--wait STATE [--timeout D]]
      The state of live update here: state, boot, generation, blackout,
      per workload what was delivered and lost.

Run 'luoinit COMMAND --help' for the options of a command.
`

// stdout and stderr are where commands print; tests replace them.
var (
	stdout io.Writer = os.Stdout
	stderr io.Writer = os.Stderr
)

func run(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return usagef("no command given")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, topUsage)
		return nil
	case "prepare":
		return cmdPrepare(args[1:])
	case "status":
		return cmdStatus(args[1:])
	case "preflight":
		return cmdPreflight(args[1:])
	case "initramfs":
		return sub("initramfs", args[1:], map[string]func([]string) error{
			"build":  cmdInitramfsBuild,
			"append": cmdInitramfsAppend,
		})
	case "manifest":
		return sub("manifest", args[1:], map[string]func([]string) error{
			"check": cmdManifestCheck,
			"show":  cmdManifestShow,
		})
	}
	return usagef("unknown command %q", args[0])
}

func sub(name string, args []string, cmds map[string]func([]string) error) error {
	names := slices.Sorted(maps.Keys(cmds))
	if len(args) == 0 {
		return usagef("%s: which one? (%s)", name, strings.Join(names, ", "))
	}
	if args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, topUsage)
		return nil
	}
	c, ok := cmds[args[0]]
	if !ok {
		return usagef("%s: unknown command %q (%s)", name, args[0], strings.Join(names, ", "))
	}
	return c(args[1:])
}

// newFlags makes a FlagSet whose --help prints usage and the options to
// stdout and whose errors become usage errors.
func newFlags(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: %s\n", usage)
		printFlags(stdout, fs)
	}
	return fs
}

// printFlags lists fs's options as the README writes them: --name ARG,
// then the text and the default, if any.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if first {
			fmt.Fprint(w, "\nOptions:\n")
			first = false
		}
		arg, text := flag.UnquoteUsage(f)
		head := "  --" + f.Name
		if arg != "" {
			head += " " + arg
		}
		fmt.Fprintf(w, "%s\n    \t%s", head, strings.ReplaceAll(text, "\n", "\n    \t"))
		switch f.DefValue {
		case "", "false", "0", "0s":
		default:
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// parse parses args; --help is not an error (the flag package has
// printed the usage already).
func parse(fs *flag.FlagSet, args []string) (help bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, usagef("%s: %v", fs.Name(), err)
	}
	return false, nil
}

// fileSpec is a repeated SRC:DST flag.
type fileSpec struct{ src, dst []string }

func (f *fileSpec) String() string { return "" }

func (f *fileSpec) Set(v string) error {
	src, dst, ok := strings.Cut(v, ":")
	if !ok || src == "" || dst == "" {
		return fmt.Errorf("%q is not SRC:DST", v)
	}
	f.src = append(f.src, src)
	f.dst = append(f.dst, dst)
	return nil
}
