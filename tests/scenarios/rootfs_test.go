package scenarios

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/luoinit/luoinit/tests/vm"
)

// The root filesystem scenarios: luoinit in an initramfs of its own, the
// workloads, their config and the kernels on a disk named by root=.

const (
	uuidRoot   = "5f1e1c2a-7b7e-4c55-9a43-2d8d6f3a9b01" // the ext4 root's filesystem UUID
	uuidNobody = "0badc0de-0000-4000-8000-000000000000" // no filesystem has it
	partA      = "a1a1a1a1-0000-4000-8000-00000000000a" // PARTUUID of root A
	partB      = "b2b2b2b2-0000-4000-8000-00000000000b" // PARTUUID of root B
)

// rootDemo builds the demo with its programs in a root tree, and checks
// that the initramfs holds luoinit alone (plus extra).
func rootDemo(t *testing.T, dir string, d vm.KVDemo) (img, tree string) {
	t.Helper()
	d.RootTree = filepath.Join(dir, "root")
	img, err := vm.KVDemoImageFor(dir, d)
	if err != nil {
		t.Fatal(err)
	}
	names, err := vm.ImageFiles(img)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.Contains(n, "kvcache") || strings.Contains(n, "config") || strings.Contains(n, "bzImage") {
			t.Errorf("the initramfs holds %s, which belongs on the root", n)
		}
	}
	t.Logf("initramfs %s: %s", filepath.Base(img), strings.Join(names, " "))
	return img, d.RootTree
}

// bootDisk boots kernel with the initramfs img and disk as /dev/vda, and
// checks that boots kernels started. Whether the guest had to report PASS
// is the caller's to judge.
func bootDisk(t *testing.T, k *vm.Kernel, img, disk, cmdline string, boots int, timeout time.Duration) *vm.Result {
	t.Helper()
	res, err := vm.Run(context.Background(), vm.Config{
		Kernel: k.BzImage, Initramfs: img, Disks: []vm.Disk{{Path: disk}},
		Append: cmdline, Timeout: timeout, Log: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Boots != boots {
		t.Fatalf("%d kernels booted, want %d: %s", res.Boots, boots, res.Message)
	}
	return res
}

// bootLines returns the console lines of each boot that contain want.
func bootLines(res *vm.Result, want string) [][]string {
	var out [][]string
	for _, boot := range res.BootConsoles() {
		var lines []string
		for _, l := range boot {
			if strings.Contains(l, want) {
				lines = append(lines, l)
			}
		}
		out = append(out, lines)
	}
	return out
}

// checkSwitch checks that boot i of res found the root spec at dev and
// switched into it with the filesystem type and mode given.
func checkSwitch(t *testing.T, res *vm.Result, i int, spec, dev, fstype, mode string) {
	t.Helper()
	found, switched := bootLines(res, "root: root="+spec+" is "+dev+" (found after"), bootLines(res, "root: switched into "+dev+" ("+fstype+", root="+spec+" "+mode)
	if len(found[i]) != 1 || len(switched[i]) != 1 {
		t.Errorf("boot %d: want one line that found root=%s at %s and one that switched into it (%s, %s): %q %q", i+1, spec, dev, fstype, mode, found[i], switched[i])
		return
	}
	t.Logf("boot %d: %s", i+1, strings.TrimSpace(found[i][0]))
	t.Logf("boot %d: %s", i+1, strings.TrimSpace(switched[i][0]))
}

// checkExes checks that in boot i every workload in comms runs a program
// of the root: /bin/COMM on a filesystem of type fstype on a block device
// (major not 0, which ramfs and tmpfs have).
func checkExes(t *testing.T, res *vm.Result, i int, fstype string, comms ...string) {
	t.Helper()
	seen := map[string]string{}
	for _, l := range res.BootConsoles()[i] {
		m, ok := vm.ParseMarker(l)
		if !ok || m.Kind != "DEMO_EXE" {
			continue
		}
		f := fields(m.Text)
		seen[f["comm"]] = m.Text
		if f["exe"] != "/bin/"+f["comm"] || f["fs"] != fstype || strings.HasPrefix(f["dev"], "0:") || f["dev"] == "" {
			t.Errorf("boot %d: %s: want /bin/%s on %s on a block device", i+1, m.Text, f["comm"], fstype)
		}
		t.Logf("boot %d: %s", i+1, m.Text)
	}
	for _, c := range comms {
		if seen[c] == "" {
			t.Errorf("boot %d: no DEMO_EXE line for %s: %v", i+1, c, seen)
		}
	}
}

// fields splits "k=v k=v" into a map.
func fields(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Fields(s) {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}

// checkRestores checks the demo's reports of n live updates: finished,
// the generation counted, every key back.
func checkRestores(t *testing.T, res *vm.Result, n int) {
	t.Helper()
	states, after := res.Find("DEMO_STATE"), res.Find("DEMO_AFTER")
	if len(states) != n || len(after) != n {
		t.Fatalf("%d and %d restores reported, want %d: %v %v", len(states), len(after), n, states, after)
	}
	for i := range states {
		if want := fmt.Sprintf("state=finished boot=updated generation=%d ", i+1); !strings.HasPrefix(states[i].Text, want) {
			t.Errorf("update %d: state %q, want it to start %q", i+1, states[i].Text, want)
		}
		if !strings.HasPrefix(after[i].Text, "keys=1000 verified=true") {
			t.Errorf("update %d: kvcache reports %q", i+1, after[i].Text)
		}
	}
}

// TestDiskRoot: luoinit alone in the initramfs, everything else on an
// ext4 disk (made by mke2fs -d) found by root=UUID= with rootwait. The VM
// boots the previous series' kernel, live-updates into the newest one
// and again into it: three boots, each switching into the disk, each
// workload's program (/proc/PID/exe) on the disk, kvcache's 1000 keys and
// every byte of the sd_notify daemon's fd store back after each update.
func TestDiskRoot(t *testing.T) {
	k, prev := kernel(t), kernelEnv(t, vm.EnvKernelPrev)
	dir := t.TempDir()
	sd := filepath.Join(dir, "sdstore")
	buildC(t, "tests/guest/sdstore/sdstore.c", sd)
	img, tree := rootDemo(t, dir, vm.KVDemo{Next: k.BzImage, Running: prev, Updates: 2, DemoArgs: []string{"--sdstore"},
		Extra:       []vm.File{{Guest: "bin/sdstore", Host: sd}},
		ExtraConfig: sdstoreWorkload})
	disk := filepath.Join(dir, "root.ext4")
	if err := vm.Ext4(disk, tree, 64, "luoinit-root", uuidRoot); err != nil {
		t.Fatal(err)
	}
	t.Logf("booting %s, next kernel %s", prev.Version, k.Version)
	res := bootDisk(t, prev, img, disk, "liveupdate=on root=UUID="+uuidRoot+" rw rootwait", 3, 10*time.Minute)
	if !res.Passed {
		t.Fatalf("failed: %s", res.Message)
	}
	for i := 0; i < 3; i++ {
		checkSwitch(t, res, i, "UUID="+uuidRoot, "/dev/vda", "ext4", "rw")
		checkExes(t, res, i, "ext4", "kvcache", "luotest", "sdstore")
	}
	checkRestores(t, res, 2)
	for i, sd := range res.Find("DEMO_SDSTORE") {
		if !strings.HasPrefix(sd.Text, "ok ") {
			t.Errorf("update %d: sdstore reports %q", i+1, sd.Text)
		}
	}
	if n := len(res.Find("DEMO_SDSTORE")); n != 2 {
		t.Errorf("%d sdstore reports, want 2", n)
	}
	if st := res.Find("DEMO_STATE"); len(st) > 0 {
		if want := fmt.Sprintf("from_kernel=%s to_kernel=%s", prev.Version, k.Version); !strings.Contains(st[0].Text, want) {
			t.Errorf("first update: %q does not say %q", st[0].Text, want)
		}
	}
}

// TestPartitionRoots: an A/B disk, GPT with two partitions: A is ext4,
// mounted read-write by root=PARTUUID=; B is a read-only erofs image with
// the label root-b. The live update goes from A to B: prepare passes
// root=LABEL=root-b ro to the next kernel (--reuse-cmdline --append),
// and kvcache's keys come back with the workloads now running from B.
func TestPartitionRoots(t *testing.T) {
	k := kernel(t)
	dir := t.TempDir()
	img, tree := rootDemo(t, dir, vm.KVDemo{Next: k.BzImage, Updates: 1, DemoArgs: []string{"--append", "root=LABEL=root-b ro"}})
	a, b := filepath.Join(dir, "a.ext4"), filepath.Join(dir, "b.erofs")
	if err := vm.Ext4(a, tree, 48, "root-a", uuidRoot); err != nil {
		t.Fatal(err)
	}
	if err := vm.Erofs(b, tree, "root-b", "6c0ffee0-0000-4000-8000-0000000000b0"); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(dir, "ab.img")
	if err := vm.GPT(disk, vm.Partition{Image: a, UUID: partA, Name: "root-a"}, vm.Partition{Image: b, UUID: partB, Name: "root-b"}); err != nil {
		t.Fatal(err)
	}
	res := bootDisk(t, k, img, disk, "liveupdate=on root=PARTUUID="+partA+" rw rootwait", 2, 8*time.Minute)
	if !res.Passed {
		t.Fatalf("failed: %s", res.Message)
	}
	checkSwitch(t, res, 0, "PARTUUID="+partA, "/dev/vda1", "ext4", "rw")
	checkExes(t, res, 0, "ext4", "kvcache", "luotest")
	if w := bootLines(res, "root=LABEL=root-b ro is /dev/vda2 here now")[0]; len(w) != 1 {
		t.Errorf("the preflight did not find the next root on root A: %q", w)
	}
	checkSwitch(t, res, 1, "LABEL=root-b", "/dev/vda2", "erofs", "ro")
	checkExes(t, res, 1, "erofs", "kvcache", "luotest")
	checkRestores(t, res, 1)
}

// TestRootMissing: a live update into a command line whose root=UUID=
// names no filesystem, with rootwait=3 and luoinit.fatal=shell. The next
// kernel's luoinit gives up after 3 s, says which root it awaited and
// which block devices there were, writes state failed with that reason
// and starts the shell, without having retrieved anything. The shell (a
// test program at /bin/sh in the initramfs, the operator) then finds
// every session and fd of the manifest still there to be retrieved.
func TestRootMissing(t *testing.T) {
	k := kernel(t)
	dir := t.TempDir()
	img, tree := rootDemo(t, dir, vm.KVDemo{Next: k.BzImage, Updates: 1,
		DemoArgs:       []string{"--append", "root=UUID=" + uuidNobody + " rootwait=3 luoinit.fatal=shell"},
		InitramfsExtra: []vm.File{{Guest: "bin/sh", Host: luotest(t)}}})
	disk := filepath.Join(dir, "root.ext4")
	if err := vm.Ext4(disk, tree, 48, "luoinit-root", uuidRoot); err != nil {
		t.Fatal(err)
	}
	// The guest passes no verdict: the shell reports what it found, and
	// luoinit reboots once it exits.
	res := bootDisk(t, k, img, disk, "liveupdate=on root=UUID="+uuidRoot+" rw rootwait", 2, 6*time.Minute)
	if f := res.Find("FAIL"); len(f) > 0 {
		t.Fatalf("guest failed: %v", f)
	}
	checkSwitch(t, res, 0, "UUID="+uuidRoot, "/dev/vda", "ext4", "rw")
	// The preflight saw it coming, and warned: a device may appear late.
	if w := bootLines(res, "root=UUID="+uuidNobody+" rw names no block device here now")[0]; len(w) == 0 {
		t.Errorf("the preflight did not warn that the next root is not here")
	} else {
		t.Logf("the preflight: %s", strings.TrimSpace(w[0]))
	}
	second := strings.Join(res.BootConsoles()[1], "\n")
	want := fmt.Sprintf("root device root=UUID=%s did not appear within 3", uuidNobody)
	// On the console, and in kmsg: the kernel echoes kmsg's record to the
	// console with its timestamp. The two may come in either order, and
	// the serial line may even interleave them (printk does not wait for
	// a tty write to end its line): count the texts, not the lines.
	fatal := bootLines(res, "luoinit: fatal: "+want)[1]
	joined := strings.Join(fatal, "\n")
	if n, kmsg := strings.Count(joined, "luoinit: fatal: "+want), strings.Count(joined, "] luoinit: fatal: "+want); n != 2 || kmsg != 1 {
		t.Fatalf("the second boot says %q %d times, %d of them kmsg's record: want it on the console and in kmsg: %q", want, n, kmsg, fatal)
	}
	t.Logf("the failure: %s", strings.TrimSpace(fatal[0]))
	for _, w := range []string{"(rootwait=3)", "block devices: vda (ext4 UUID=" + uuidRoot + ` LABEL="luoinit-root")`, "no session was retrieved"} {
		if !strings.Contains(fatal[0], w) {
			t.Errorf("the fatal line does not say %q", w)
		}
	}
	if strings.Contains(second, "root: switched into") {
		t.Errorf("the second boot switched into a root")
	}
	states := res.Find("SHELL_STATE")
	if len(states) != 1 {
		t.Fatalf("the shell reported %d state files, want 1 (did luoinit.fatal=shell run it?)", len(states))
	}
	st := states[0].Text
	if !strings.HasPrefix(st, "state=failed boot=updated generation=1 ") || !strings.Contains(st, want) {
		t.Errorf("state file %q: want failed, updated, generation 1 and the reason", st)
	}
	sessions := res.Find("SHELL_SESSION")
	end := res.Find("SHELL_END")
	if len(sessions) != 1 || len(end) != 1 {
		t.Fatalf("the shell reported sessions %v and end %v, want kvcache's session and one end", sessions, end)
	}
	if f := fields(sessions[0].Text); f["workload"] != "kvcache" || f["fds"] != "1/1" || f["bytes"] != fmt.Sprint(64<<20) {
		t.Errorf("kvcache's session after the failed root: %q, want its one fd, 64 MiB", sessions[0].Text)
	}
	if f := fields(end[0].Text); f["errors"] != "0" || f["sessions"] != "2" {
		t.Errorf("the shell: %q, want luoinit's and kvcache's sessions, no error", end[0].Text)
	}
}
