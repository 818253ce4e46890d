package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/luoinit/luoinit/handoff"
	"golang.org/x/sys/unix"
)

// A memfd spec on the workload command line: name:size:seed.
type memSpec struct {
	name string
	size int
	seed uint64
}

func parseSpecs(s string) ([]memSpec, error) {
	var out []memSpec
	for _, part := range strings.Split(s, ",") {
		f := strings.Split(part, ":")
		if len(f) != 3 {
			return nil, fmt.Errorf("memfd spec %q is not name:size:seed", part)
		}
		size, err := strconv.Atoi(f[1])
		if err != nil {
			return nil, err
		}
		seed, err := strconv.ParseUint(f[2], 0, 64)
		if err != nil {
			return nil, err
		}
		out = append(out, memSpec{f[0], size, seed})
	}
	return out, nil
}

// workloadMain runs when luotest is started as a test workload (not as
// PID 1): `luotest workload push|hold ...`. It reports with markers too.
func workloadMain(args []string) {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "workload: push, hold, auto, checker, orphan or sleep?")
		os.Exit(2)
	}
	switch args[0] {
	case "auto":
		autoMain(args[1:])
		return
	case "checker":
		checkerMain(args[1:])
		return
	case "demo":
		demoMain(args[1:])
		return
	case "pid1cancel":
		pid1CancelMain()
		return
	case "netcheck":
		netcheckMain()
		return
	case "sddriver":
		sdDriverMain(args[1:])
		return
	case "vmhost":
		vmHostMain(args[1:])
		return
	case "luofaults":
		luoFaultsMain(args[1:])
		return
	case "orphan":
		orphanMain()
		return
	case "owner":
		ownerMain(args[1:])
		return
	case "sessdriver":
		sessDriverMain(args[1:])
		return
	case "sleep":
		time.Sleep(300 * time.Millisecond)
		os.Exit(0)
	case "holddev":
		holdDevMain()
		return
	case "signaller":
		signallerMain()
		return
	case "faultcheck":
		faultCheckMain(args[1:])
		return
	case "manifestfault":
		manifestFaultMain()
		return
	}
	fs := flag.NewFlagSet("workload", flag.ExitOnError)
	name := fs.String("name", "", "workload name")
	socket := fs.String("socket", "/run/luoinit/prepare.sock", "prepare's socket")
	memfds := fs.String("memfds", "", "name:size:seed,...")
	pipe := fs.String("pipe", "", "also push a pipe under this name")
	fdnum := fs.Int("fd", 10, "hold: put the memfd at this fd number")
	pidfile := fs.String("pidfile", "", "hold: write the pid here")
	step := fs.String("step", "", "pushfault: the step to break off after")
	fs.Parse(args[1:])
	specs, err := parseSpecs(*memfds)
	if err != nil {
		fail(*name, err)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)

	files, err := makeMemfds("", specs)
	if err != nil {
		fail(*name, err)
	}
	switch args[0] {
	case "push":
		if *pipe != "" {
			r, _, err := os.Pipe()
			if err != nil {
				fail(*name, err)
			}
			files = append(files, handoff.File{Name: *pipe, File: r})
		}
		push(*name, *socket, files)
	case "hold":
		if len(files) != 1 {
			fail(*name, fmt.Errorf("hold takes one memfd"))
		}
		if err := unix.Dup2(int(files[0].File.Fd()), *fdnum); err != nil {
			fail(*name, err)
		}
		if err := os.WriteFile(*pidfile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			fail(*name, err)
		}
	case "pushfault":
		pushFaultMain(*name, *socket, *step, files)
	default:
		fail(*name, fmt.Errorf("unknown workload mode %q", args[0]))
	}
	<-term
	fmt.Printf("\nLUOTEST:WORKLOAD_TERM %s\n", *name)
	os.Exit(0)
}

func fail(name string, err error) {
	fmt.Printf("\nLUOTEST:FAIL workload %s: %v\n", name, err)
	os.Exit(1)
}
