package prepare

// Preserving the stored memfds and reporting the rest needs
// /dev/liveupdate and PID 1's fd store: TestSystemdFDStore in
// tests/scenarios covers it. These tests cover what comes before.

import (
	"bytes"
	"context"
	"errors"
	"log"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/preflight"
	"golang.org/x/sys/unix"
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
	var logb bytes.Buffer
	err = Run(context.Background(), Options{
		Config: cfg, Kernel: kernel, Initrd: kernel, Log: log.New(&logb, "", 0),
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
	// fails only later, at the preflight (no LUO device here, and a kernel
	// that is no bzImage).
	err = Run(context.Background(), Options{
		Config: cfg, Kernel: kernel, Initrd: kernel, Log: log.New(&logb, "", 0), Device: filepath.Join(dir, "absent-liveupdate"),
		FDStore: func(string) []handoff.File { return nil },
		reboot:  func() error { t.Fatal("reboot called"); return nil },
	})
	if errors.Is(err, errNoFDStore) || !errors.Is(err, preflight.ErrRefused) {
		t.Fatalf("Run with an fd store = %v, want it to get as far as the preflight", err)
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

// The judgement of a store and the settling of the declared fds, with
// real fds of each kind; PRESERVE_FD itself is the VM scenario's.
func TestJudgeStoreAndDeclared(t *testing.T) {
	memfd, err := unix.MemfdCreate("arena", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	unix.Close(pair[1])
	stored := []handoff.File{
		{Name: "conn", File: os.NewFile(uintptr(pair[0]), "conn")},
		{Name: "arena", File: os.NewFile(uintptr(memfd), "arena")},
		{Name: "events", File: r},
	}
	defer func() {
		for _, f := range stored {
			f.File.Close()
		}
	}()
	var logb bytes.Buffer
	s := newState(Options{Log: log.New(&logb, "", 0)})
	wl := &manifest.Workload{Name: "sd", FDSession: "luoinit.sd", Handoff: manifest.HandoffFDStore}
	carry, reasons := s.judgeStore(wl, stored)
	if len(carry) != 1 || carry[0].Name != "arena" || carry[0].kind != "memfd" {
		t.Fatalf("carry %v, want the memfd alone", carry)
	}
	for name, want := range map[string]string{"conn": "socket: LUO preserves memfds only", "events": "pipe: LUO preserves memfds only"} {
		if reasons[name] != want {
			t.Errorf("reason for %s: %q, want %q", name, reasons[name], want)
		}
		if !strings.Contains(logb.String(), `fd "`+name+`" in its fd store is not carried across the live update: `+want) {
			t.Errorf("%s not reported by name and reason:\n%s", name, logb.String())
		}
	}

	for _, tc := range []struct {
		fds  []manifest.FD
		says string
	}{
		{[]manifest.FD{{Name: "arena"}, {Name: "conn", Optional: true}, {Name: "gone", Optional: true}}, ""},
		{[]manifest.FD{{Name: "conn"}}, `fd "conn", declared in the config and not optional, cannot be carried: socket: LUO preserves memfds only`},
		{[]manifest.FD{{Name: "gone"}}, `fd "gone", declared in the config and not optional, cannot be carried: not in the fd store`},
	} {
		wl.FDs = tc.fds
		err := checkDeclared(wl, carry, reasons)
		if tc.says == "" && err != nil || tc.says != "" && (err == nil || !strings.Contains(err.Error(), tc.says)) {
			t.Errorf("checkDeclared(%v) = %v, want %q", tc.fds, err, tc.says)
		}
	}

	// What the manifest gets: the carried memfd (as preserveStored makes
	// it), then the optional declared fds, dropped with their reasons; and
	// it is a valid manifest.
	wl.FDs = []manifest.FD{{Name: "conn", Optional: true}, {Name: "arena"}, {Name: "gone", Optional: true}}
	carried := []manifest.FD{{Name: "journal", Kind: "memfd", Token: 1}, {Name: "arena", Kind: "memfd", Token: 2}}
	fds, err := s.settleDeclared(wl, carried, reasons)
	if err != nil {
		t.Fatal(err)
	}
	want := []manifest.FD{
		{Name: "journal", Kind: "memfd", Token: 1},
		{Name: "arena", Kind: "memfd", Token: 2},
		{Name: "conn", Optional: true, Dropped: true, DropReason: "socket: LUO preserves memfds only"},
		{Name: "gone", Optional: true, Dropped: true, DropReason: "not in the fd store"},
	}
	if !reflect.DeepEqual(fds, want) {
		t.Fatalf("fds\n %+v\nwant\n %+v", fds, want)
	}
	wl.FDs, wl.Argv = fds, []string{"/bin/sd"}
	m := &manifest.Manifest{Version: manifest.Version, Generation: 1, Workloads: []manifest.Workload{*wl}}
	if err := m.Validate(); err != nil {
		t.Fatalf("the manifest of an fdstore workload does not validate: %v", err)
	}
}
