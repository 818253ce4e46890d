package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/proctree"
	"golang.org/x/sys/unix"
)

// demoMain drives `make demo` as a workload of luoinit. On the cold boot
// it fills kvcache, starts luoinit prepare and has kvcache push its arena;
// prepare then stops kvcache and kexecs. After the live update it waits for
// luoinit to finish the restore, reads every key back and reports.
//
//	LUOTEST:DEMO_BEFORE keys=N
//	LUOTEST:DEMO_AFTER keys=N verified=true
//	LUOTEST:DEMO_STATE <luoinit's state file, one line>
//
// With --expect-refusal, the prepare must be refused by its preflight;
// the demo then checks that nothing happened (see refusedDemo).
func demoMain(args []string) {
	fs := flag.NewFlagSet("demo", flag.ExitOnError)
	updates := fs.Int("updates", 1, "how many live updates in a row")
	appendArgs := fs.String("append", "", "--append for luoinit prepare")
	refusal := fs.String("expect-refusal", "", "the prepare must be refused by the preflight with this text in its error")
	stranger := fs.Bool("stranger-push", false, "before kvcache pushes, push for kvcache from this process (another workload, the same uid): PID 1 must refuse it")
	agent := fs.Bool("agent", false, "behave like an update agent (a shell running `luoinit prepare`): SIGTERM does not end the demo while its prepare runs")
	sdstore := fs.Bool("sdstore", false, "also judge the sdstore daemon (its verdict in /run/sdstore.result): stored on the cold boot, every byte back after each update")
	fs.Parse(args)
	const keys = "1000"
	takeHandoff("demo")
	settled := func(st string) bool { return !stateIs("restoring")(st) }
	state := waitState("settled", settled)
	reportInitrd()
	generation := 0
	if strings.Contains(state, "boot=normal") {
		mustFile("/run/kvcache.sock")
		if out, err := kv("fill", keys); err != nil {
			vmEnd("FAIL", fmt.Sprintf("kvcache fill: %v: %s", err, out))
		}
		out, _ := kv("COUNT")
		fmt.Printf("\nLUOTEST:DEMO_BEFORE keys=%s\n", strings.TrimPrefix(strings.TrimSpace(out), "COUNT "))
	} else {
		fmt.Printf("\nLUOTEST:DEMO_STATE %s\n", strings.ReplaceAll(strings.TrimSpace(state), "\n", " "))
		reportStatus("DEMO_STATUS")
		generation = generationOf(state)
		mustFile("/run/kvcache.sock")
		out, err := kv("verify", keys)
		if err != nil {
			vmEnd("FAIL", fmt.Sprintf("kvcache verify after live update %d: %v: %s", generation, err, out))
		}
		count, _ := kv("COUNT")
		stats, _ := kv("STATS")
		fmt.Printf("\nLUOTEST:DEMO_AFTER keys=%s verified=true %s\n", strings.TrimPrefix(strings.TrimSpace(count), "COUNT "), strings.TrimSpace(stats))
		if *sdstore {
			r := waitResult()
			fmt.Printf("\nLUOTEST:DEMO_SDSTORE %s\n", r)
			if !strings.HasPrefix(r, "ok ") {
				vmEnd("FAIL", "sdstore after live update: "+r)
			}
		}
		if generation >= *updates {
			reportExes()
			vmEnd("PASS", fmt.Sprintf("every key read back after %d live update(s)", generation))
		}
	}
	if *sdstore && generation == 0 {
		if r := waitResult(); r != "stored" {
			vmEnd("FAIL", "sdstore did not store its fds: "+r)
		}
	}
	reportExes()
	// Next live update: into the same image, which this kernel kept at
	// /sys/firmware/initrd (retain_initrd), prepare's default.
	prepArgs := []string{"prepare", "--config", "/etc/luoinit/config.toml",
		"--kernel", "/boot/bzImage", "--reuse-cmdline"}
	if *appendArgs != "" {
		prepArgs = append(prepArgs, "--append", *appendArgs)
	}
	if *refusal != "" {
		refusedDemo(prepArgs, *refusal, keys)
	}
	if *agent {
		// A handler, not SIG_IGN: the prepare child gets SIGTERM's default
		// back at exec.
		signal.Notify(make(chan os.Signal, 1), unix.SIGTERM)
	}
	prep := exec.Command("/bin/luoinit", prepArgs...)
	prep.Stdout, prep.Stderr = os.Stdout, os.Stdout
	if err := prep.Start(); err != nil {
		vmEnd("FAIL", err.Error())
	}
	mustFile("/run/luoinit/prepare.sock")
	if *stranger {
		strangerPush()
	}
	if out, err := kv("PUSH"); err != nil {
		vmEnd("FAIL", fmt.Sprintf("kvcache PUSH: %v: %s", err, out))
	}
	err := prep.Wait()
	vmEnd("FAIL", fmt.Sprintf("luoinit prepare returned instead of rebooting: %v", err))
}

// strangerPush pushes a memfd for kvcache from the demo, a process of the
// same uid outside kvcache's process tree, and reports what luoinit said:
//
//	LUOTEST:STRANGER_PUSH <the push's error, or "accepted">
func strangerPush() {
	f, err := memfd("not-kvcache", 0)
	if err == nil {
		_, err = f.Write([]byte("a stranger's bytes"))
	}
	if err != nil {
		vmEnd("FAIL", err.Error())
	}
	defer f.Close()
	err = handoff.Push("/run/luoinit/prepare.sock", "kvcache", []handoff.File{{Name: "arena", File: f}}, 30*time.Second)
	text := "accepted"
	if err != nil {
		text = err.Error()
	}
	fmt.Printf("\nLUOTEST:STRANGER_PUSH %s\n", text)
}

// reportInitrd prints the sha256 of the image this kernel booted from, as
// the kernel kept it (retain_initrd), and whether a manifest sits in it.
//
//	LUOTEST:DEMO_INITRD sha256=HEX bytes=N manifest_in_root=false
func reportInitrd() {
	b, err := os.ReadFile("/sys/firmware/initrd")
	if err != nil {
		vmEnd("FAIL", fmt.Sprintf("the booted image: %v (was the kernel booted with retain_initrd?)", err))
	}
	_, inRoot := os.Stat("/etc/luoinit/manifest.toml")
	fmt.Printf("\nLUOTEST:DEMO_INITRD sha256=%x bytes=%d manifest_in_root=%v\n", sha256.Sum256(b), len(b), inRoot == nil)
}

// reportExes prints, for each child of PID 1 (the workloads), the program
// it runs and the filesystem that holds it, by statfs(2) and stat(2) of
// /proc/PID/exe: on a root filesystem, its type and device; in the
// initramfs, ramfs or tmpfs with major 0.
//
//	LUOTEST:DEMO_EXE comm=kvcache pid=41 exe=/bin/kvcache fs=ext4 dev=254:0
func reportExes() {
	fsNames := map[int64]string{0xef53: "ext4", 0xe0f5e1e2: "erofs", 0x858458f6: "ramfs", 0x01021994: "tmpfs"}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, err := proctree.Parent(pid); err != nil || ppid != 1 {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil {
			continue
		}
		comm := strings.TrimSpace(string(b))
		exe := fmt.Sprintf("/proc/%d/exe", pid)
		target, _ := os.Readlink(exe)
		var sfs unix.Statfs_t
		var st unix.Stat_t
		if unix.Statfs(exe, &sfs) != nil || unix.Stat(exe, &st) != nil {
			continue // gone meanwhile
		}
		fsName := fsNames[int64(sfs.Type)]
		if fsName == "" {
			fsName = fmt.Sprintf("%#x", sfs.Type)
		}
		fmt.Printf("\nLUOTEST:DEMO_EXE comm=%s pid=%d exe=%s fs=%s dev=%d:%d\n", comm, pid, target, fsName, unix.Major(st.Dev), unix.Minor(st.Dev))
	}
}

func kv(args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command("/bin/kvcache", append([]string{"client", "--socket", "/run/kvcache.sock"}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func mustFile(p string) {
	if !waitFile(p) {
		vmEnd("FAIL", p+" never appeared")
	}
}

// refusedDemo runs a prepare that the preflight must refuse, and checks
// what the refusal left: prepare exited 1 naming the refusal, having
// neither preserved nor stopped anything (it never asked kvcache for its
// arena, which kvcache still serves, all keys intact), no kexec image
// loaded, and the sessions free: a dry run into the running kernel's own
// image creates them again. `luoinit preflight` is then run alone on both
// images, its findings on the console.
func refusedDemo(prepArgs []string, want, keys string) {
	var out bytes.Buffer
	prep := exec.Command("/bin/luoinit", prepArgs...)
	prep.Stdout, prep.Stderr = io.MultiWriter(os.Stdout, &out), io.MultiWriter(os.Stdout, &out)
	err := prep.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		vmEnd("FAIL", fmt.Sprintf("prepare into the refused kernel: %v, want exit status 1: %s", err, lastLines(out.String(), 4)))
	}
	for _, w := range []string{"preflight refused the live update", want, "would lose the preserved state", "nothing was held"} {
		if !strings.Contains(out.String(), w) {
			vmEnd("FAIL", fmt.Sprintf("the refused prepare does not say %q: %s", w, lastLines(out.String(), 4)))
		}
	}
	if strings.Contains(out.String(), "phase prepared") {
		vmEnd("FAIL", "the refused prepare reached phase prepared")
	}
	if b, err := os.ReadFile("/sys/kernel/kexec_loaded"); err != nil || strings.TrimSpace(string(b)) != "0" {
		vmEnd("FAIL", fmt.Sprintf("after the refusal /sys/kernel/kexec_loaded is %q (%v), want 0", b, err))
	}
	if out, err := kv("verify", keys); err != nil {
		vmEnd("FAIL", fmt.Sprintf("kvcache after the refused prepare: %v: %s", err, out))
	}
	fmt.Printf("\nLUOTEST:REFUSED_SERVING kvcache verified %s keys after the refusal\n", keys)

	// The sessions are free: a dry run into the running kernel creates them.
	running := "/boot/vmlinuz-" + release()
	dry := append(slices.Clone(prepArgs), "--dry-run")
	dry[slices.Index(dry, "/boot/bzImage")] = running
	dp := exec.Command("/bin/luoinit", dry...)
	var dout bytes.Buffer
	dp.Stdout, dp.Stderr = &dout, io.MultiWriter(os.Stdout, &dout)
	if err := dp.Start(); err != nil {
		vmEnd("FAIL", err.Error())
	}
	mustFile("/run/luoinit/prepare.sock")
	if out, err := kv("PUSH"); err != nil {
		vmEnd("FAIL", fmt.Sprintf("kvcache PUSH to the dry run: %v: %s", err, out))
	}
	if err := dp.Wait(); err != nil {
		vmEnd("FAIL", fmt.Sprintf("dry run into %s after the refusal: %v: %s", running, err, lastLines(dout.String(), 4)))
	}
	if out, err := kv("verify", keys); err != nil {
		vmEnd("FAIL", fmt.Sprintf("kvcache after the dry run: %v: %s", err, out))
	}

	// The standalone preflight also reads KHO's debugfs, where mounted.
	if err := unix.Mount("debugfs", "/sys/kernel/debug", "debugfs", 0, ""); err != nil {
		vmEnd("FAIL", fmt.Sprintf("mount debugfs: %v", err))
	}
	var shown []string
	filepath.WalkDir("/sys/kernel/debug/kho", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			shown = append(shown, p)
		}
		return nil
	})
	fmt.Printf("\nLUOTEST:KHO_DEBUGFS %s\n", strings.Join(shown, " "))
	for _, k := range []string{"/boot/bzImage", running} {
		cmd := exec.Command("/bin/luoinit", "preflight", "--kernel", k, "--reuse-cmdline")
		var pout bytes.Buffer
		cmd.Stdout, cmd.Stderr = &pout, &pout
		err := cmd.Run()
		for _, line := range strings.Split(strings.TrimSpace(pout.String()), "\n") {
			fmt.Printf("\nLUOTEST:PREFLIGHT %s %s\n", k, line)
		}
		if (err == nil) != (k == running) {
			vmEnd("FAIL", fmt.Sprintf("luoinit preflight --kernel %s: %v", k, err))
		}
	}
	vmEnd("PASS", "the preflight refused the kernel; kvcache kept serving, nothing loaded, the sessions free")
}

func release() string {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return ""
	}
	return unix.ByteSliceToString(uts.Release[:])
}
