package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/tests/guest/kmsgclock"
	"github.com/luoinit/luoinit/wellknown"
	"golang.org/x/sys/unix"
)

// autoMain is a workload that works on both sides of a live update, with
// the same argv (the manifest relaunches what the config started):
// started by luoinit with a handoff advertised, it receives its memfds and
// verifies every byte; otherwise it makes them and, if prepare's socket
// shows up, pushes them. Markers:
//
//	LUOTEST:RESTORED <name> <n>   n fds received and verified
//	LUOTEST:FRESH <name>          started without fds (cold or degraded boot)
//	LUOTEST:FDCHECK <name> clean  no fd it was not meant to have
func autoMain(args []string) {
	fs := flag.NewFlagSet("auto", flag.ExitOnError)
	name := fs.String("name", "", "workload name")
	memfds := fs.String("memfds", "", "name:size:seed,...")
	count := fs.Int("count", 0, "also make this many 4 KiB memfds named m000...")
	socket := fs.String("socket", "/run/luoinit/prepare.sock", "prepare's socket")
	dieBeforeAck := fs.Bool("die-before-ack", false, "after a live update: exit 3 before receiving")
	neverConnect := fs.Bool("never-connect", false, "after a live update: never connect")
	allowMissing := fs.Bool("allow-missing", false, "after a live update: an fd not handed over is reported (LUOTEST:RECEIVED) and made afresh, not a failure")
	fault := &autoFault{name: ""}
	fs.StringVar(&fault.pullFault, "pull-fault", "", "after a live update, first start: \"after-hello\": say HELLO, then exit")
	fs.DurationVar(&fault.delayHello, "delay-hello", 0, "after a live update: wait this long before the HELLO")
	fs.BoolVar(&fault.oomAfter, "oom-after-restore", false, "after a live update, first start: once verified, eat memory until OOM-killed")
	fs.BoolVar(&fault.ignoreTerm, "ignore-term", false, "before a live update: ignore SIGTERM")
	fs.Parse(args)
	fault.name = *name
	specs, err := parseSpecs(*memfds)
	if err != nil && *memfds != "" {
		fail(*name, err)
	}
	for i := 0; i < *count; i++ {
		specs = append(specs, memSpec{fmt.Sprintf("m%03d", i), 4096, uint64(1000 + i)})
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	os.WriteFile(filepath.Join("/run", *name+".pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)

	if _, ok := os.LookupEnv(wellknown.EnvHandoffFD); ok {
		switch {
		case *dieBeforeAck:
			fmt.Printf("\nLUOTEST:DIED %s before ACK\n", *name)
			os.Exit(3)
		case *neverConnect:
			fmt.Printf("\nLUOTEST:SILENT %s\n", *name)
			<-term
			os.Exit(0)
		}
		fault.beforeReceive()
		t0 := time.Now()
		files, err := handoff.Receive(*name, 30*time.Second)
		if err != nil {
			fail(*name, err)
		}
		own := map[int]bool{}
		for _, f := range files {
			own[int(f.File.Fd())] = true
		}
		mine := files
		if len(files) == 0 {
			// Cold or degraded boot: start over with fresh memfds.
			if mine, err = makeMemfds(*name+".", specs); err != nil {
				fail(*name, err)
			}
			for _, f := range mine {
				own[int(f.File.Fd())] = true
			}
			fmt.Printf("\nLUOTEST:FRESH %s\n", *name)
			os.WriteFile(eventFile(*name, "fresh"), nil, 0o644)
		} else {
			byName := map[string]*os.File{}
			for _, f := range files {
				byName[f.Name] = f.File
			}
			var got []string
			for _, sp := range specs {
				f, ok := byName[sp.name]
				if !ok && *allowMissing {
					fresh, err := makeMemfds(*name+".", []memSpec{sp})
					if err != nil {
						fail(*name, err)
					}
					mine = append(mine, fresh...)
					own[int(fresh[0].File.Fd())] = true
					got = append(got, sp.name+"=missing")
					continue
				}
				if !ok {
					fail(*name, fmt.Errorf("fd %q not handed over", sp.name))
				}
				if err := checkPattern(f, sp.size, sp.seed); err != nil {
					fail(*name, fmt.Errorf("fd %q: %w", sp.name, err))
				}
				got = append(got, sp.name+"=verified")
			}
			if *allowMissing {
				fmt.Printf("\nLUOTEST:RECEIVED %s %s\n", *name, strings.Join(got, " "))
			} else if len(files) != len(specs) {
				fail(*name, fmt.Errorf("received %d fds, want %d", len(files), len(specs)))
			}
			fmt.Printf("\nLUOTEST:RESTORED %s %d (received in %v)\n", *name, len(files), time.Since(t0).Round(time.Microsecond))
			os.WriteFile(eventFile(*name, "restored"), nil, 0o644)
			fault.afterRestore()
		}
		if err := fdCheck(*name, own); err != nil {
			fail(*name, err)
		}
		fmt.Printf("\nLUOTEST:FDCHECK %s clean\n", *name)
		// Like a real workload, push again whenever a prepare listens.
		if len(mine) > 0 {
			go pushWhenAsked(*name, *socket, mine)
		}
		<-term
		os.Exit(0)
	}

	// Before the live update: make, fill and push.
	if fault.ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
		fmt.Printf("\nLUOTEST:INFO %s ignores SIGTERM\n", *name)
	}
	files, err := makeMemfds(*name+".", specs)
	if err != nil {
		fail(*name, err)
	}
	if len(files) > 0 {
		push(*name, *socket, files)
	}
	<-term
	os.Exit(0)
}

// fdCheck looks at every fd of this process: only stdio, its own memfds
// (own: fd numbers) and what the Go runtime opens itself may be there; no
// handoff socket left over, no memfd of another workload, no LUO fd.
// (A memfd retrieved from LUO has lost its name: it reads "/ (deleted)".)
func fdCheck(name string, own map[int]bool) error {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range ents {
		n, _ := strconv.Atoi(e.Name())
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the directory's own fd, closed by now
		}
		switch {
		case n <= 2 || own[n]:
		case target == "anon_inode:[eventpoll]" || target == "anon_inode:[eventfd]" || strings.HasPrefix(target, "pipe:") || strings.HasPrefix(target, "anon_inode:[pidfd]"):
			// the Go runtime's netpoller and signal plumbing
		case strings.HasPrefix(target, "/proc/"):
		default:
			return fmt.Errorf("fd %d is %s, which it was not meant to have", n, target)
		}
	}
	for n := range own {
		if _, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", n)); err != nil {
			return fmt.Errorf("own fd %d is not open", n)
		}
	}
	return nil
}

// checkerMain runs as a workload of luoinit after the boot: it waits for
// the state file, pokes PID 1 with SIGTERM and SIGHUP, makes an orphan
// and checks that no zombie remains, then reports and reboots the VM.
func checkerMain(args []string) {
	fs := flag.NewFlagSet("checker", flag.ExitOnError)
	want := fs.String("state", "finished", "the state luoinit must reach")
	fs.Parse(args)
	takeHandoff("checker") // it is a workload too
	state := waitState(*want, stateIs(*want))
	fmt.Printf("\nLUOTEST:STATE %s\n", strings.ReplaceAll(strings.TrimSpace(state), "\n", " "))
	// When the kernel ran /init, for make perf: the zero of its figures.
	if at, err := kmsgclock.InitExec("luotest"); err == nil {
		fmt.Printf("\nLUOTEST:INITEXEC exec_ns=%d\n", at)
	} else {
		fmt.Printf("\nLUOTEST:INFO no init exec time: %v\n", err)
	}
	// PID 1's peak memory, for make perf.
	if b, err := os.ReadFile("/proc/1/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				fmt.Printf("\nLUOTEST:PID1MEM VmHWM=%s\n", strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			}
		}
	}

	// PID 1 must shrug off SIGTERM and SIGHUP.
	for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGHUP} {
		if err := unix.Kill(1, sig); err != nil {
			vmEnd("FAIL", fmt.Sprintf("kill(1, %v): %v", sig, err))
		}
	}
	// An orphan: a child that starts a grandchild, says its pid and exits
	// at once; the grandchild ends up a child of PID 1 and must be reaped
	// there: its pid leaves /proc only once PID 1 has waited for it (a
	// zombie keeps its /proc entry).
	out, err := exec.Command("/bin/luotest", "workload", "orphan").Output()
	if err != nil {
		vmEnd("FAIL", fmt.Sprintf("orphan maker: %v", err))
	}
	orphan, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		vmEnd("FAIL", fmt.Sprintf("orphan maker said %q, not a pid", out))
	}
	start := time.Now()
	for {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", orphan)); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Since(start) > 30*time.Second {
			state, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", orphan))
			vmEnd("FAIL", fmt.Sprintf("the orphan (pid %d) is still there after 30s: %s", orphan, state))
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Printf("\nLUOTEST:ORPHAN pid=%d gone_after_ms=%d\n", orphan, time.Since(start).Milliseconds())
	if z := zombies(); len(z) > 0 {
		vmEnd("FAIL", fmt.Sprintf("zombies left: %v", z))
	}
	if _, err := os.Stat("/proc/1"); err != nil {
		vmEnd("FAIL", "PID 1 is gone")
	}
	fmt.Printf("\nLUOTEST:SIGNALS PID 1 survived SIGTERM and SIGHUP, no zombies\n")
	vmEnd("PASS", "luoinit reached state "+*want)
}

// zombies lists processes in state Z.
func zombies() []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i > 0 && i+2 < len(s) && s[i+2] == 'Z' {
			out = append(out, s[:i+1])
		}
	}
	return out
}

// orphanMain starts a grandchild that outlives it by a moment, prints
// the grandchild's pid and exits.
func orphanMain() {
	cmd := exec.Command("/bin/sh", "-c", "sleep 0.3")
	if _, err := os.Stat("/bin/sh"); err != nil {
		cmd = exec.Command("/bin/luotest", "workload", "sleep")
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(cmd.Process.Pid)
	os.Exit(0)
}

// pushWhenAsked pushes files each time a new prepare socket appears.
func pushWhenAsked(name, socket string, files []handoff.File) {
	var last uint64
	for {
		time.Sleep(50 * time.Millisecond)
		var st unix.Stat_t
		if unix.Stat(socket, &st) != nil || st.Ino == last {
			continue
		}
		last = st.Ino
		if err := handoff.Push(socket, name, files, 60*time.Second); err != nil {
			fmt.Printf("\nLUOTEST:WORKLOAD_ACK %s error: %v\n", name, err)
		} else {
			fmt.Printf("\nLUOTEST:WORKLOAD_ACK %s ok\n", name)
		}
	}
}

// pid1CancelMain runs as a workload of luoinit (PID 1): a --no-reboot
// prepare handed to PID 1 is cancelled with SIGTERM; nothing may stay
// loaded or preserved, the workloads keep running, and a dry run with the
// same session names works at once.
func pid1CancelMain() {
	takeHandoff("canceller")
	waitState("normal", stateIs("normal"))
	if !waitFile("/run/luoinit/control.sock") {
		vmEnd("FAIL", "PID 1 has no control socket")
	}
	var buf syncBuffer
	cmd := exec.Command("/bin/luoinit", "prepare", "--config", "/etc/luoinit/config.toml",
		"--kernel", "/boot/bzImage", "--no-reboot")
	cmd.Stdout = io.MultiWriter(os.Stdout, &buf)
	cmd.Stderr = io.MultiWriter(os.Stdout, &buf)
	if err := cmd.Start(); err != nil {
		vmEnd("FAIL", err.Error())
	}
	for i := 0; !strings.Contains(buf.String(), "holding the sessions"); i++ {
		if i > 1200 {
			vmEnd("FAIL", "the prepare never reached prepared: "+lastLines(buf.String(), 4))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if b, _ := os.ReadFile("/sys/kernel/kexec_loaded"); strings.TrimSpace(string(b)) != "1" {
		vmEnd("FAIL", fmt.Sprintf("prepared, but kexec_loaded is %q", b))
	}
	if out, err := exec.Command("/bin/luoinit", "status", "--wait", "prepared", "--timeout", "10s").CombinedOutput(); err != nil {
		vmEnd("FAIL", fmt.Sprintf("luoinit status --wait prepared: %v: %s", err, out))
	}
	cmd.Process.Signal(unix.SIGTERM)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		vmEnd("FAIL", fmt.Sprintf("the cancelled prepare: %v, want exit status 1", err))
	}
	out := buf.String()
	for _, want := range []string{"answered by luoinit, PID 1", "cancelled", "sessions closed", "kexec image unloaded"} {
		if !strings.Contains(out, want) {
			vmEnd("FAIL", fmt.Sprintf("the cancelled prepare did not say %q: %s", want, lastLines(out, 3)))
		}
	}
	if b, _ := os.ReadFile("/sys/kernel/kexec_loaded"); strings.TrimSpace(string(b)) != "0" {
		vmEnd("FAIL", fmt.Sprintf("after the cancel kexec_loaded is %q", b))
	}
	b, _ := os.ReadFile("/run/kv.pid")
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); pid == 0 || !strings.Contains(string(st), ") S ") && !strings.Contains(string(st), ") R ") {
		vmEnd("FAIL", fmt.Sprintf("workload kv (pid %d) is not running after the cancel: %q", pid, st))
	}
	if out, err := exec.Command("/bin/luoinit", "status", "--wait", "normal", "--timeout", "10s").CombinedOutput(); err != nil {
		vmEnd("FAIL", fmt.Sprintf("the state after the cancel: %v: %s", err, out))
	}
	fmt.Printf("\nLUOTEST:CANCELLED by PID 1: exit 1, sessions closed, kexec unloaded, kv running, state prepared then normal again\n")
	out2, code, err := runPrepare("--config", "/etc/luoinit/config.toml", "--kernel", "/boot/bzImage", "--dry-run")
	if err != nil || code != 0 || !strings.Contains(out2, `session = "luoinit.kv"`) {
		vmEnd("FAIL", fmt.Sprintf("a dry run after the cancel: exit %d, %v: %s", code, err, lastLines(out2, 4)))
	}
	vmEnd("PASS", "a prepare handed to PID 1 and cancelled left nothing behind; the same sessions worked again")
}
