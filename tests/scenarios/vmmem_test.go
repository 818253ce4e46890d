package scenarios

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/luoinit/luoinit/tests/qemu"
	"github.com/luoinit/luoinit/tests/vm"
)

// The VM-host scenario: Debian's QEMU, unmodified, runs a guest whose RAM
// is a memfd that luoinit made for it ([[workload.fd]] size) and keeps in
// its fd store. At the freeze, QEMU's stop_command (vmctl save) has QEMU
// write its device state to the disk root in cpr-reboot mode, RAM left out
// (x-ignore-shared), and quit; after the kexec PID 1 passes the carried
// memfd again and vmctl run starts QEMU on it with the saved state: the
// guest goes on counting where it stopped, its RAM in place.

const (
	vmRAMMiB     = 24 // the guest's RAM: the memfd's size
	vmPatternMiB = 16 // filled once from 1 MiB up
	vmState      = "/var/lib/vm/state"
	vmQMP        = "/run/vm.qmp"
	vmFirmware   = "/usr/share/vmguest/vmguest.bin"
	vmQEMU       = "/usr/bin/qemu-system-x86_64"
	vmUpdates    = 2 // live updates in a row
)

// vmConfig is the config of the scenario; saveState is where vmctl save
// writes (a directory that does not exist makes the save fail).
func vmConfig(updates int, saveState string) string {
	return fmt.Sprintf(`version = 1

[[workload]]
name = "vm"
argv = ["/usr/bin/vmctl", "run", "--state", %[1]q, "--",
  %[2]q, "-nodefaults", "-display", "none", "-monitor", "none",
  "-machine", "pc,memory-backend=ram",
  "-object", "memory-backend-file,id=ram,size=%[3]dM,mem-path=/proc/self/fd/{fd:guest-ram},share=on",
  "-bios", %[4]q, "-serial", "stdio",
  "-qmp", "unix:%[5]s,server=on,wait=off", "-accel", "tcg,tb-size=16"]
handoff = "fdstore"
stop_command = ["/usr/bin/vmctl", "save", "--qmp", %[5]q, "--state", %[6]q, "--timeout", "150s"]
stop_timeout = "180s"
restart = "on-failure"

  [[workload.fd]]
  name = "guest-ram"
  size = "%[3]dM"

[[workload]]
name = "driver"
argv = ["/bin/luotest", "workload", "vmhost", "--updates", "%[7]d", "--qemu", %[2]q,
  "--counter", "%#[8]x", "--pattern", "%#[10]x:%[9]d",
  "--bad-config", "/etc/luoinit/badsave.toml", "--state", %[1]q]
handoff = "none"
`, vmState, vmQEMU, vmRAMMiB, vmFirmware, vmQMP, saveState, updates, qemu.CountAddr, vmPatternMiB<<20, qemu.PatternAddr)
}

// vmLine is a status line of the guest with when the host read it.
type vmLine struct {
	boot int
	at   time.Duration
	st   qemu.Status
}

// TestVMMemory: see the top of this file; vmUpdates live updates in a
// row. Checked, from what the guest
// VM's console and the driver (luotest vmhost) report:
//   - QEMU is Debian's binary, unmodified (its sha256 in the guest is the
//     one of the package's file) and says its Debian version;
//   - a save that fails (stop_command exits non-zero) cancels the update:
//     same QEMU process, the guest counts on, no state file left;
//   - across the live update the guest's count goes on from where it
//     stopped (never from zero: the fill runs once), every check of the
//     pattern passes, and the pattern's sha256 read through QEMU's fd of
//     the memfd is the same before and after;
//   - the saved state is far smaller than the RAM (the RAM was not copied);
//   - the guest-visible pause is logged next to luoinit's blackout.
func TestVMMemory(t *testing.T) {
	k := kernel(t)
	g := luotest(t)
	dir := t.TempDir()
	in, err := qemu.Fetch(qemu.DefaultCache())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("QEMU: Debian qemu-system-x86 %s (%s)", in.Version, in.Root)
	fw, err := qemu.BuildFirmware(dir, vmPatternMiB, qemu.DefaultWait/50)
	if err != nil {
		t.Fatal(err)
	}
	vmctl := filepath.Join(dir, "vmctl")
	if err := vm.BuildStatic("./examples/vmctl", vmctl); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(dir, "root")
	// Debian's tree as it installs, at /: /usr/bin/qemu-system-x86_64 with
	// its loader and libraries where its PT_INTERP and the loader's default
	// paths find them (merged /usr).
	if out, err := exec.Command("cp", "-a", in.Root+"/.", tree).CombinedOutput(); err != nil {
		t.Fatalf("copying QEMU's tree: %v: %s", err, out)
	}
	os.Remove(filepath.Join(tree, "version"))
	if err := vm.RootTree(tree, vmConfig(vmUpdates, vmState),
		vm.File{Guest: "lib64", Link: "usr/lib64"},
		vm.File{Guest: "bin/luoinit", Host: luoinitBin},
		vm.File{Guest: "bin/luotest", Host: g},
		vm.File{Guest: "usr/bin/vmctl", Host: vmctl},
		vm.File{Guest: strings.TrimPrefix(vmFirmware, "/"), Host: fw},
		vm.File{Guest: vm.GuestKernel, Host: k.BzImage},
	); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "etc/luoinit/badsave.toml"), []byte(vmConfig(vmUpdates, "/var/lib/vm/missing/state")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(tree, "var/lib/vm"), 0o755); err != nil {
		t.Fatal(err)
	}
	size, err := treeMiB(tree)
	if err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(dir, "root.ext4")
	if err := vm.Ext4(disk, tree, size+64, "vmhost", uuidRoot); err != nil {
		t.Fatal(err)
	}
	img, err := vm.Image(dir, "init.cpio", vm.File{Guest: "init", Host: luoinitBin})
	if err != nil {
		t.Fatal(err)
	}
	hostSHA := fileSHA(t, filepath.Join(in.Root, strings.TrimPrefix(vmQEMU, "/")))
	res := bootDisk(t, k, img, disk, "liveupdate=on root=UUID="+uuidRoot+" rw rootwait", vmUpdates+1, 20*time.Minute)
	if !res.Passed {
		t.Fatalf("failed: %s", res.Message)
	}

	// QEMU as Debian ships it.
	if v := res.Find("VM_VERSION"); len(v) != 1 || !strings.Contains(v[0].Text, "(Debian "+in.Version+")") {
		t.Errorf("QEMU's version: %v, want one line naming Debian %s", v, in.Version)
	} else {
		t.Logf("QEMU says: %s", v[0].Text)
	}
	var seen []map[string]string
	for _, m := range res.Find("VM_SEEN") {
		seen = append(seen, fields(m.Text))
	}
	if len(seen) != vmUpdates+1 {
		t.Fatalf("%d VM_SEEN reports, want %d (the cold boot, then after each update)", len(seen), vmUpdates+1)
	}
	for i, s := range seen {
		if s["exe"] != vmQEMU || s["exe_sha256"] != hostSHA {
			t.Errorf("boot %d: the VMM runs %s (sha256 %s), want Debian's %s (sha256 %s)", i+1, s["exe"], s["exe_sha256"], vmQEMU, hostSHA)
		}
		if s["pattern_sha256"] == "" || s["pattern_sha256"] != seen[0]["pattern_sha256"] {
			t.Errorf("boot %d: the pattern's sha256 through QEMU's fd of the memfd is %q; on the cold boot it was %q", i+1, s["pattern_sha256"], seen[0]["pattern_sha256"])
		}
	}
	t.Logf("the %d MiB pattern read through QEMU's fd of the memfd: sha256 %s on each of the %d boots", vmPatternMiB, seen[0]["pattern_sha256"], len(seen))

	// The guest's own lines, each with the host's stamp, by boot. A line
	// another writer cut on the console does not parse and is left out.
	perBoot := make([][]vmLine, vmUpdates+1)
	fills := 0
	boot := -1
	for i, l := range res.Console {
		if strings.Contains(l, "Linux version ") {
			boot++
		}
		j := strings.Index(l, "vmguest ")
		if j < 0 || boot < 0 || boot > vmUpdates {
			continue
		}
		if _, ok := qemu.ParseFilled(l[j:]); ok {
			fills++
		}
		if strings.HasPrefix(l[j:], qemu.BadAtPrefix) {
			t.Errorf("boot %d: the guest found its pattern changed: %s", boot+1, l)
		}
		if st, ok := qemu.ParseStatus(l[j:]); ok {
			if st.Bad != 0 {
				t.Errorf("boot %d: the guest counts %d bad words: %+v", boot+1, st.Bad, st)
			}
			perBoot[boot] = append(perBoot[boot], vmLine{boot: boot, at: res.Stamps[i], st: st})
		}
	}
	if fills != 1 {
		t.Errorf("the guest filled its RAM %d times, want once (on the cold boot only)", fills)
	}
	for b, part := range perBoot {
		if len(part) < 3 {
			t.Fatalf("boot %d: %d status lines of the guest, want at least 3", b+1, len(part))
		}
		for i := 1; i < len(part); i++ {
			if part[i].st.Count <= part[i-1].st.Count {
				t.Errorf("boot %d: count %d after %d", b+1, part[i].st.Count, part[i-1].st.Count)
			}
		}
	}
	var gaps []time.Duration
	for i := 1; i < len(perBoot[0]); i++ {
		gaps = append(gaps, perBoot[0][i].at-perBoot[0][i-1].at)
	}
	slices.Sort(gaps)
	period := gaps[len(gaps)/2]
	blackouts := blackoutLine.FindAllStringSubmatch(strings.Join(res.Console, "\n"), -1)
	if len(blackouts) != vmUpdates {
		t.Errorf("%d blackout lines, want one per update: %q", len(blackouts), blackouts)
	}
	for u := 1; u <= vmUpdates; u++ {
		last, first, end := perBoot[u-1][len(perBoot[u-1])-1], perBoot[u][0], perBoot[u][len(perBoot[u])-1]
		// Never from zero, and from where it stopped: the save stops the
		// guest, so the first count after it is the next one (a few more
		// if lines before it were cut on the console).
		if first.st.Count <= last.st.Count || first.st.Count > last.st.Count+8 {
			t.Errorf("update %d: the guest counts from %d after it; before it, it had reached %d: it must go on from there", u, first.st.Count, last.st.Count)
		}
		if end.st.Passes < last.st.Passes+1 {
			t.Errorf("update %d: the guest completed no full pass over its pattern after it (passes %d, %d before)", u, end.st.Passes, last.st.Passes)
		}
		blackout := "none"
		if u <= len(blackouts) {
			blackout = blackouts[u-1][1]
		}
		t.Logf("update %d: the guest's last count before it %d (full passes over the pattern %d), first after it %d, last %d (passes %d), bad=0 throughout",
			u, last.st.Count, last.st.Passes, first.st.Count, end.st.Count, end.st.Passes)
		t.Logf("update %d: guest-visible pause %v, from its last count line before the update to its first after (host clock; the count's period is %v, so %.0f periods); luoinit's blackout %s (guest clocks)",
			u, (first.at - last.at).Round(time.Millisecond), period.Round(time.Millisecond), float64(first.at-last.at)/float64(period), blackout)
	}

	// The failed save.
	bad := res.Find("VM_BADSAVE")
	if len(bad) != 1 {
		t.Fatalf("%d VM_BADSAVE reports, want 1: %v", len(bad), bad)
	}
	b := fields(bad[0].Text)
	countBefore, _ := strconv.Atoi(b["count_before"])
	countAfter, _ := strconv.Atoi(b["count_after"])
	switch {
	case b["exit"] == "0":
		t.Errorf("the prepare whose save failed exited 0: %s", bad[0].Text)
	case b["qemu_pid"] != seen[0]["qemu_pid"]:
		t.Errorf("QEMU is pid %s after the failed save, was %s: it must have kept running", b["qemu_pid"], seen[0]["qemu_pid"])
	case countAfter <= countBefore:
		t.Errorf("the guest did not count on after the failed save: %s", bad[0].Text)
	case b["state_left"] != "false":
		t.Errorf("the failed save left a state file: %s", bad[0].Text)
	}
	failed := slices.DeleteFunc(bootLines(res, `workload "vm": stop_command`)[0], func(l string) bool {
		return !strings.Contains(l, "failed after") || !strings.Contains(l, "no workload was stopped")
	})
	if len(failed) == 0 {
		t.Errorf("no console line says the vm's stop_command failed and nothing was stopped")
	} else {
		t.Logf("the failed save: %s", strings.TrimSpace(failed[0]))
		t.Logf("the failed save: %s", bad[0].Text)
	}

	// The state is small: the RAM stayed in the memfd.
	saved := stateSize.FindAllStringSubmatch(strings.Join(res.Console, "\n"), -1)
	if len(saved) != vmUpdates {
		t.Errorf("vmctl save printed %d state sizes, want one per update", len(saved))
	}
	for _, m := range saved {
		if n, _ := strconv.ParseInt(m[1], 10, 64); n <= 0 || n > int64(vmRAMMiB<<20)/10 {
			t.Errorf("QEMU's saved state is %d bytes for %d MiB of RAM: want far smaller (the RAM is not copied)", n, vmRAMMiB)
		} else {
			t.Logf("QEMU's saved state: %d bytes; its RAM: %d bytes (%.1f%%)", n, vmRAMMiB<<20, 100*float64(n)/float64(vmRAMMiB<<20))
		}
	}
}

var (
	stateSize    = regexp.MustCompile(`vmctl: saved state: (\d+) bytes`)
	blackoutLine = regexp.MustCompile(`blackout: (\S+) \(`)
)

// treeMiB is the size of the files under dir, in MiB, rounded up.
func treeMiB(dir string) (int, error) {
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += (fi.Size() + 4095) &^ 4095
		}
		return err
	})
	return int(n>>20) + 1, err
}

func fileSHA(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}
