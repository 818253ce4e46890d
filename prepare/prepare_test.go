package prepare

// What needs /dev/liveupdate (collect, preserve, kexec, freeze, cancel) is
// covered by the VM scenarios TestPrepare, TestPrepareCancel and
// TestPrepareRefused in tests/scenarios. These tests cover the failures
// that come before the kernel is involved.

import (
	"bytes"
	"context"
	"errors"
	"log"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/preflight"
)

const testConfig = `version = 1

[[workload]]
name = "kv"
argv = ["/usr/bin/kv"]
handoff = "socket"

  [[workload.fd]]
  name = "arena"
`

func TestRunFailsCleanly(t *testing.T) {
	cfg, err := manifest.ParseConfig([]byte(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kernel := filepath.Join(dir, "bzImage")
	os.WriteFile(kernel, []byte("not really a kernel"), 0o644)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o644)
	cpio := filepath.Join(dir, "initramfs.cpio")
	os.WriteFile(cpio, []byte("070701"), 0o644)
	defaultInitrd = filepath.Join(dir, "absent-firmware-initrd")
	defer func() { defaultInitrd = DefaultInitrd }()

	for _, tc := range []struct {
		desc  string
		opts  Options
		is    error
		words []string
	}{
		// The preflight refuses both before anything is opened.
		{"no LUO device", Options{Kernel: kernel, Initrd: cpio, Device: filepath.Join(dir, "liveupdate")}, preflight.ErrRefused,
			[]string{"no LUO device", "liveupdate=on", "not a bzImage", "would lose the preserved state", "nothing was held"}},
		{"initrd not an initramfs", Options{Kernel: kernel, Initrd: kernel, Device: filepath.Join(dir, "liveupdate")}, preflight.ErrRefused,
			[]string{"initramfs: " + kernel + ": not an initramfs", "nothing was held"}},
		{"no initrd, none kept", Options{Kernel: kernel}, os.ErrNotExist, []string{"no initramfs for the next kernel", "--initrd", "retain_initrd"}},
		{"missing kernel", Options{Kernel: filepath.Join(dir, "absent"), Initrd: cpio}, os.ErrNotExist, []string{"kernel"}},
		{"empty initrd", Options{Kernel: kernel, Initrd: empty}, nil, []string{"initrd", "not a non-empty regular file"}},
		{"no kernel", Options{}, nil, []string{"no kernel given"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			work := filepath.Join(t.TempDir(), "work")
			o := tc.opts
			o.Config = cfg
			o.Socket = filepath.Join(work, "prepare.sock")
			var logb bytes.Buffer
			o.Log = log.New(&logb, "", 0)
			o.reboot = func() error { t.Fatal("reboot called"); return nil }
			err := Run(context.Background(), o)
			if !errors.Is(err, ErrCancelled) {
				t.Fatalf("Run = %v, want ErrCancelled", err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("Run = %v, want %v wrapped", err, tc.is)
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			// Nothing half-done left behind.
			if ents, _ := os.ReadDir(work); len(ents) != 0 {
				t.Errorf("work dir holds %d entries after the failure", len(ents))
			}
		})
	}
}
