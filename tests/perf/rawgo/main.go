// Command rawgo is make perf's Go floor: rawluo's second stage (see
// tests/perf/raw/rawluo.c) written in Go, through luoinit's own luo
// package, with nothing else. Run as PID 1 after rawluo's first stage
// kexecs into it, it mounts /proc and devtmpfs, opens /dev/liveupdate,
// retrieves the session "rawluo" and its rawluo.n= fds by token 1..n,
// reads and checks every byte and finishes, stamping each step on
// CLOCK_BOOTTIME, and prints rawluo's PERF line:
//
//	LUOTEST:PERF raw n=N exec_ns=.. init_ns=.. device_ns=.. session_ns=.. fds_ns=.. verified_ns=.. finish_ns=..
//
// Built plain, it is what any Go PID 1 pays: the runtime's start and a
// small binary. Built with -tags floor, it also links the dependencies
// luoinit is built on, called as luoinit calls them (floor.go), so that
// its package inits run and its binary is their size: what luoinit
// cannot get under while it uses them. With -tags "floor kernelimage" it
// links preflight's kernel-image reader and its decompressors as well
// (kernelimage.go); make perf builds that one for its size only.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/luoinit/luoinit/luo"
	"github.com/luoinit/luoinit/tests/guest/kmsgclock"
	"golang.org/x/sys/unix"
)

const (
	fdSize  = 4096
	session = "rawluo"
)

func main() {
	start := kmsgclock.Now()
	floor() // nothing at run time: see floor.go
	if err := stage2(start); err != nil {
		end("FAIL", "rawgo: "+err.Error())
	}
}

// fill is rawluo.c's pattern for the memfd of index i.
func fill(buf []byte, i int) {
	for k := range buf {
		buf[k] = byte(i*131 + k*7 + 1)
	}
}

func stage2(init int64) error {
	os.Mkdir("/proc", 0o755)
	if err := unix.Mount("proc", "/proc", "proc", 0, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	n := 1
	for _, f := range strings.Fields(string(cmdline)) {
		if v, ok := strings.CutPrefix(f, "rawluo.n="); ok {
			if n, err = strconv.Atoi(v); err != nil || n < 0 || n > 1000000 {
				return fmt.Errorf("rawluo.n=%s out of range", v)
			}
		}
	}
	lim := uint64(max(n+64, 1024))
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: lim, Max: lim}); err != nil {
		return fmt.Errorf("setrlimit(RLIMIT_NOFILE, %d): %w", lim, err)
	}
	unix.Mount("devtmpfs", "/dev", "devtmpfs", 0, "")
	dev, err := luo.Open(luo.DefaultPath)
	if err != nil {
		return err
	}
	tdev := kmsgclock.Now()
	s, err := dev.RetrieveSession(session)
	if err != nil {
		return err
	}
	tsess := kmsgclock.Now()
	files := make([]*os.File, n)
	for i := range files {
		if files[i], err = s.RetrieveFD(uint64(i + 1)); err != nil {
			return err
		}
	}
	tfds := kmsgclock.Now()
	want, got := make([]byte, fdSize), make([]byte, fdSize)
	for i, f := range files {
		fill(want, i)
		if k, err := unix.Pread(int(f.Fd()), got, 0); err != nil || k != fdSize || string(want) != string(got) {
			return fmt.Errorf("token %d: data differs (%d bytes, %v)", i+1, k, err)
		}
	}
	tver := kmsgclock.Now()
	if err := s.Finish(); err != nil {
		return err
	}
	tfin := kmsgclock.Now()
	exec, err := kmsgclock.InitExec("rawgo")
	if err != nil {
		exec = -1
	}
	fmt.Printf("\nLUOTEST:PERF raw n=%d exec_ns=%d init_ns=%d device_ns=%d session_ns=%d fds_ns=%d verified_ns=%d finish_ns=%d\n",
		n, exec, init, tdev, tsess, tfds, tver, tfin)
	end("PASS", fmt.Sprintf("rawgo: %d fds retrieved, read and verified, session finished", n))
	return nil
}

// end reports as rawluo does and restarts the VM.
func end(kind, msg string) {
	fmt.Printf("\nLUOTEST:%s %s\n", kind, msg)
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	select {}
}
