package preflight

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSystem is a root with /proc/meminfo, /dev/liveupdate and the
// running kernel's image at /boot/vmlinuz-7.3.4.
func fakeSystem(t *testing.T, meminfo string, device bool, bootLUO string) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"proc", "dev", "boot"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "proc/meminfo"), []byte(meminfo), 0o644)
	if device {
		os.WriteFile(filepath.Join(root, "dev/liveupdate"), nil, 0o600)
	}
	if bootLUO != "" {
		writeImage(t, filepath.Join(root, "boot/vmlinuz-7.3.4"), bootLUO, false)
	}
	return root
}

func writeImage(t *testing.T, path, luo string, config bool) string {
	t.Helper()
	if err := os.WriteFile(path, bzImage(goodHeader(), compress(t, "gzip", fakeKernel(luo, config))), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// fakeDebugfs writes KHO's outgoing tree as debugfs shows it: the root
// FDT (its compatible property after a big-endian name offset) and LUO's
// raw blob, which begins with the ABI string padded to 8 bytes.
func fakeDebugfs(t *testing.T, root, luo string) {
	t.Helper()
	dir := filepath.Join(root, KHODebugfs)
	os.MkdirAll(filepath.Join(dir, "sub_fdts"), 0o755)
	fdt := []byte("\xd0\x0d\xfe\xed\x00\x00\x00\x03\x00\x00\x00\x07\x00\x00\x00\x00kho-v4\x00\x00\x00\x00\x00\x09compatible\x00")
	os.WriteFile(filepath.Join(dir, "fdt"), fdt, 0o400)
	blob := append([]byte(luo), make([]byte, 8-len(luo)%8)...)
	blob = append(blob, 1, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x10, 0x32, 0x54, 0, 0, 0, 0)
	os.WriteFile(filepath.Join(dir, "sub_fdts", "LUO"), blob, 0o400)
	os.WriteFile(filepath.Join(dir, "scratch_len"), []byte("0x1000000\n0x800000\n"), 0o400) // 24 MiB
}

const plentyMem = "MemTotal:        1000000 kB\nMemFree:          900000 kB\nMemAvailable:     900000 kB\nShmem:            100000 kB\n"

func TestRun(t *testing.T) {
	dir := t.TempDir()
	next5 := writeImage(t, filepath.Join(dir, "next5"), "luo-v5", false)
	next6 := writeImage(t, filepath.Join(dir, "next6"), "luo-v6", false)
	next5cfg := writeImage(t, filepath.Join(dir, "next5cfg"), "luo-v5", true)
	both := writeImage(t, filepath.Join(dir, "both"), "luo-v5\x00luo-v6", false)
	running6 := writeImage(t, filepath.Join(dir, "running6"), "luo-v6", false)
	nextXZ := writeImage(t, filepath.Join(dir, "nextxz"), "luo-v5\x00XZ decompressor ran out of memory", false)
	// initrd writes a sparse file of size bytes that starts with head.
	initrd := func(name, head string, size int64) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(head), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, size); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cpio := func(size int64) string { return initrd(fmt.Sprintf("cpio%d", size), "070701", size) }
	xz := initrd("initrd.xz", "\xfd7zXZ\x00", 4096)
	padded := initrd("padded", "\x00\x00\x00\x00070701", 4096)
	bzImageAsInitrd := initrd("bz", "MZ\xea\x07\x00\xc0", 4096)
	nuls := initrd("nuls", "", 8192)
	const cmd = "console=ttyS0 liveupdate=on kho=on"
	for _, tc := range []struct {
		desc    string
		o       Options
		meminfo string
		device  bool
		bootLUO string
		debugfs string // the LUO string of a fake KHO debugfs
		// fail: the checks that must fail (none: Err is nil); line: a
		// finding that must be there.
		fail []string
		line string
	}{
		{desc: "same ABI, from /boot", o: Options{Kernel: next5, Cmdline: cmd}, device: true, bootLUO: "luo-v5",
			line: "ok   LUO: luo-v5 in both kernels"},
		{desc: "LUO ABI changed", o: Options{Kernel: next6, Cmdline: cmd}, device: true, bootLUO: "luo-v5",
			fail: []string{"LUO"}, line: "FAIL LUO: the next kernel reads luo-v6 but the running kernel writes luo-v5 (LUO_ABI_COMPATIBLE)"},
		{desc: "the named image wins over /boot", o: Options{Kernel: next5, Cmdline: cmd, RunningKernel: running6}, device: true, bootLUO: "luo-v5",
			fail: []string{"LUO"}, line: "running kernel writes luo-v6"},
		{desc: "the record wins over /boot", o: Options{Kernel: next5, Cmdline: cmd, Recorded: &Recorded{Release: "7.3.4", Compatible: []string{"kho-v4", "luo-v6"}, From: "m"}},
			device: true, bootLUO: "luo-v5", fail: []string{"LUO"}, line: "(from luoinit's record of loading it (m))"},
		{desc: "a record of another release is ignored", o: Options{Kernel: next5, Cmdline: cmd, Recorded: &Recorded{Release: "7.2.13", Compatible: []string{"luo-v6"}}},
			device: true, bootLUO: "luo-v5", line: "(from image "},
		{desc: "running unknown", o: Options{Kernel: next6, Cmdline: cmd}, device: true,
			line: "warn running kernel: the compatible strings 7.3.4 writes are unknown"},
		{desc: "unreadable named image", o: Options{Kernel: next5, Cmdline: cmd, RunningKernel: filepath.Join(dir, "absent")}, device: true,
			fail: []string{"running kernel"}},
		{desc: "ambiguous next", o: Options{Kernel: both, Cmdline: cmd}, device: true, bootLUO: "luo-v5",
			fail: []string{"LUO"}, line: "several versions (luo-v5, luo-v6)"},
		{desc: "no device", o: Options{Kernel: next5, Cmdline: cmd}, bootLUO: "luo-v5",
			fail: []string{"running kernel"}, line: "no LUO device"},
		{desc: "not an image", o: Options{Kernel: filepath.Join(dir, "absent"), Cmdline: cmd}, device: true,
			fail: []string{"image"}},
		{desc: "liveupdate off", o: Options{Kernel: next5, Cmdline: "liveupdate=on kho=on liveupdate=off"}, device: true, bootLUO: "luo-v5",
			fail: []string{"command line"}, line: "liveupdate=on is missing"},
		{desc: "bare liveupdate", o: Options{Kernel: next5, Cmdline: "liveupdate kho=on"}, device: true, bootLUO: "luo-v5",
			fail: []string{"command line"}},
		{desc: "kho off", o: Options{Kernel: next5, Cmdline: "liveupdate=1 kho=off"}, device: true, bootLUO: "luo-v5",
			fail: []string{"command line"}, line: "kho=off turns KHO off"},
		{desc: "after --", o: Options{Kernel: next5, Cmdline: "kho=on -- liveupdate=on"}, device: true, bootLUO: "luo-v5",
			fail: []string{"command line"}},
		{desc: "no kho, image silent", o: Options{Kernel: next5, Cmdline: "liveupdate=on"}, device: true, bootLUO: "luo-v5",
			fail: []string{"command line"}, line: "kho=on is missing and the image does not say KHO is on by default"},
		{desc: "no kho, config says on", o: Options{Kernel: next5cfg, Cmdline: "liveupdate=on"}, device: true, bootLUO: "luo-v5",
			line: "ok   config: embedded: KEXEC_HANDOVER, LIVEUPDATE and LIVEUPDATE_MEMFD are y; KHO on by default"},
		{desc: "replaced", o: Options{Kernel: next5, Cmdline: cmd, Given: "liveupdate=off kho=0"}, device: true, bootLUO: "luo-v5",
			line: "(luoinit replaced liveupdate=off kho=0)"},
		{desc: "no memory to load", o: Options{Kernel: next5, Cmdline: cmd, Initrd: cpio(900 << 20)}, device: true, bootLUO: "luo-v5",
			fail: []string{"memory"}, line: "not enough available to load it"},
		{desc: "no memory to start", o: Options{Kernel: next5, Cmdline: cmd, Initrd: cpio(100 << 20)},
			meminfo: "MemTotal: 1000000 kB\nMemAvailable: 900000 kB\nShmem: 900000 kB\n", device: true, bootLUO: "luo-v5",
			fail: []string{"memory"}, line: "could not start beside the preserved memory"},
		{desc: "debugfs wins over /boot", o: Options{Kernel: next5, Cmdline: cmd}, debugfs: "luo-v6", device: true, bootLUO: "luo-v5",
			fail: []string{"LUO"}, line: "has luo-v6: taking luo-v6"},
		{desc: "debugfs alone", o: Options{Kernel: next5, Cmdline: cmd}, debugfs: "luo-v5", device: true,
			line: "ok   memfd: the next kernel reads memfd-v2 (the running kernel's version unknown)"},
		{desc: "debugfs alone, LUO differs", o: Options{Kernel: next6, Cmdline: cmd}, debugfs: "luo-v5", device: true,
			fail: []string{"LUO"}, line: "writes kho-v4 luo-v5 (from KHO debugfs "},
		{desc: "fits in scratch", o: Options{Kernel: next5, Cmdline: cmd, Initrd: cpio(10 << 20)}, debugfs: "luo-v5", device: true,
			line: "20 MiB in the 24 MiB of KHO scratch"},
		{desc: "scratch too small", o: Options{Kernel: next5, Cmdline: cmd, Initrd: cpio(20 << 20)}, debugfs: "luo-v5", device: true,
			fail: []string{"memory"}, line: "do not fit in KHO's scratch area"},
		{desc: "initrd cpio", o: Options{Kernel: next5, Cmdline: cmd, Initrd: padded}, device: true, bootLUO: "luo-v5",
			line: "ok   initramfs: " + padded + ": cpio (newc), read by every kernel"},
		{desc: "initrd xz, kernel has it", o: Options{Kernel: nextXZ, Cmdline: cmd, Initrd: xz}, device: true, bootLUO: "luo-v5",
			line: "xz compressed, and the next kernel has the xz decompressor"},
		{desc: "initrd xz, kernel lacks it", o: Options{Kernel: next5, Cmdline: cmd, Initrd: xz}, device: true, bootLUO: "luo-v5",
			fail: []string{"initramfs"}, line: "the next kernel has no xz decompressor (CONFIG_RD_XZ)"},
		{desc: "initrd a kernel", o: Options{Kernel: next5, Cmdline: cmd, Initrd: bzImageAsInitrd}, device: true, bootLUO: "luo-v5",
			fail: []string{"initramfs"}, line: "not an initramfs: at byte 0 it starts with 4d 5a ea 07 00 c0"},
		{desc: "initrd of NULs", o: Options{Kernel: next5, Cmdline: cmd, Initrd: nuls}, device: true, bootLUO: "luo-v5",
			fail: []string{"initramfs"}, line: "not an initramfs: empty, or NUL bytes only"},
		{desc: "no meminfo", o: Options{Kernel: next5, Cmdline: cmd}, meminfo: "nothing", device: true, bootLUO: "luo-v5",
			line: "warn memory:"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			mem := tc.meminfo
			if mem == "" {
				mem = plentyMem
			}
			o := tc.o
			o.root = fakeSystem(t, mem, tc.device, tc.bootLUO)
			if tc.debugfs != "" {
				fakeDebugfs(t, o.root, tc.debugfs)
			}
			o.release = "7.3.4"
			rep := Run(o)
			var lines, failed []string
			for _, f := range rep.Findings {
				lines = append(lines, f.String())
				if f.Status == Fail {
					failed = append(failed, f.Check)
				}
				if strings.Contains(f.String(), "\n") {
					t.Errorf("finding on more than one line: %q", f)
				}
			}
			all := strings.Join(lines, "\n")
			if strings.Join(failed, ",") != strings.Join(tc.fail, ",") {
				t.Errorf("failed checks %v, want %v:\n%s", failed, tc.fail, all)
			}
			err := rep.Err()
			if (err != nil) != (len(tc.fail) > 0) || err != nil && (!errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "would lose the preserved state")) {
				t.Errorf("Err() = %v", err)
			}
			if tc.line != "" && !strings.Contains(all, tc.line) {
				t.Errorf("no finding with %q:\n%s", tc.line, all)
			}
		})
	}
}

func TestKernelBool(t *testing.T) {
	for v, want := range map[string][2]bool{
		"on": {true, true}, "Y": {true, true}, "1": {true, true}, "off": {false, true},
		"0": {false, true}, "n": {false, true}, "": {false, false}, "maybe": {false, false},
	} {
		if on, ok := kernelBool(v); on != want[0] || ok != want[1] {
			t.Errorf("kernelBool(%q) = %v, %v, want %v", v, on, ok, want)
		}
	}
}
