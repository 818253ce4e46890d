package prepare

// Preserving the stored memfds and reporting the rest needs
// /dev/liveupdate and PID 1's fd store: TestSystemdFDStore in
// tests/scenarios covers it. These tests cover what comes before.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/manifest"
)

const fdstoreConfig = `version = 1

[[workload]]
name = "kv"
argv = ["/usr/bin/kv"]
handoff = "socket"

[[workload]]
name = "sd"
argv = ["/usr/bin/sd"]
handoff = "fdstore"

  [[workload.fd]]
  name = "arena"
`

// A standalone prepare (no FDStore: not PID 1) with an fdstore workload
// fails before anything is opened, preserved or stopped, and says why.
func TestStandaloneRefusesFDStore(t *testing.T) {
	cfg, err := manifest.ParseConfig([]byte(fdstoreConfig))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kernel := filepath.Join(dir, "bzImage")
	os.WriteFile(kernel, []byte("kernel"), 0o644)
	work := filepath.Join(dir, "work")
	var log bytes.Buffer
	err = Run(context.Background(), Options{
		Config: cfg, Kernel: kernel, WorkDir: work, Log: &log,
		Device: filepath.Join(dir, "absent-liveupdate"), // never reached
		reboot: func() error { t.Fatal("reboot called"); return nil },
	})
	if !errors.Is(err, ErrCancelled) || !errors.Is(err, errNoFDStore) {
		t.Fatalf("Run = %v, want it cancelled for the fd store", err)
	}
	for _, want := range []string{`workloads "sd"`, `handoff = "fdstore"`, "the fd store lives in PID 1", "standalone prepare cannot reach it", "nothing was held"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Errorf("the work dir was made (%v): the check must come before anything", err)
	}
	// With a store to ask (PID 1), the same config passes the check and
	// fails only at the missing device.
	err = Run(context.Background(), Options{
		Config: cfg, Kernel: kernel, WorkDir: work, Log: &log, Device: filepath.Join(dir, "absent-liveupdate"),
		FDStore: func(string) []handoff.File { return nil },
		reboot:  func() error { t.Fatal("reboot called"); return nil },
	})
	if errors.Is(err, errNoFDStore) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Run with an fd store = %v, want it to get as far as the device", err)
	}
}

func TestCheckCarriedNames(t *testing.T) {
	mk := func(names ...string) []storedFD {
		var out []storedFD
		for _, n := range names {
			out = append(out, storedFD{File: handoff.File{Name: n}, kind: "memfd"})
		}
		return out
	}
	for _, tc := range []struct {
		names []string
		says  string
	}{
		{[]string{"arena", "journal"}, ""},
		{nil, ""},
		{[]string{"arena", "stored", "arena"}, `two memfds in its fd store are named "arena"`},
		{[]string{"a", ""}, "empty FDNAME="},
	} {
		err := checkCarriedNames("sd", mk(tc.names...))
		if tc.says == "" && err != nil || tc.says != "" && (err == nil || !strings.Contains(err.Error(), tc.says)) {
			t.Errorf("checkCarriedNames(%q) = %v, want %q", tc.names, err, tc.says)
		}
	}
}
