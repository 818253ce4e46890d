package scenarios

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/luoinit/luoinit/tests/vm"
)

// sdstoreConfig: the sdstore daemon keeps its memory in PID 1's fd store
// (handoff "fdstore") and counts as back in service at READY=1; "arena" is
// declared (required), "journal" is not (carried all the same), "conn" is
// a socket declared optional (reported, dropped and recorded). The driver
// runs `luoinit prepare` and judges the result.
const sdstoreConfig = `version = 1

[[workload]]
name = "sdstore"
argv = ["/bin/sdstore"]
handoff = "fdstore"
ready = "notify"
fdstore_max = 8

  [[workload.fd]]
  name = "arena"

  [[workload.fd]]
  name = "conn"
  optional = true

[[workload]]
name = "driver"
argv = ["/bin/luotest", "workload", "sddriver"]
handoff = "socket"
`

// buildC compiles a C program of tests/guest statically.
func buildC(t *testing.T, src, out string) {
	t.Helper()
	root, err := vm.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("gcc", "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o", out, filepath.Join(root, src))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", src, err, b)
	}
}

var readyLine = regexp.MustCompile(`sdstore: (\d+) fds READY=1 (\S+) after init start`)

// TestSystemdFDStore: an unmodified daemon written in C against systemd's
// documented protocol keeps two memfds in the fd store of luoinit (PID 1
// on both boots) under names, plus a socket; `luoinit prepare`, answered
// by PID 1, preserves the memfds and reports the socket by name and
// reason; after the kexec the daemon gets both memfds back at fds 3 and 4
// with LISTEN_FDNAMES=arena:journal and LISTEN_PID its own pid, every
// byte, a stamp written after storing and the seals intact; its READY=1 is
// the moment the report counts it back in service.
func TestSystemdFDStore(t *testing.T) {
	k := kernel(t)
	g := luotest(t)
	dir := t.TempDir()
	sd := filepath.Join(dir, "sdstore")
	buildC(t, "tests/guest/sdstore/sdstore.c", sd)
	cfg := writeTemp(t, "config.toml", sdstoreConfig)
	img, err := vm.Image(dir, "sdstore.cpio",
		vm.File{Guest: "init", Host: luoinitBin},
		vm.File{Guest: "bin/luoinit", Host: luoinitBin},
		vm.File{Guest: "bin/luotest", Host: g},
		vm.File{Guest: "bin/sdstore", Host: sd},
		vm.File{Guest: "etc/luoinit/config.toml", Host: cfg},
		vm.File{Guest: vm.GuestKernel, Host: k.BzImage})
	if err != nil {
		t.Fatal(err)
	}
	res := runVM(t, img, "liveupdate=on", 6*time.Minute)
	if res.Boots != 2 {
		t.Fatalf("%d kernels booted, want 2", res.Boots)
	}
	if len(res.Find("SDSTORE_STORED")) != 1 {
		t.Fatalf("the daemon did not store its fds on the cold boot")
	}
	restored := res.Find("SDSTORE_RESTORED")
	if len(restored) != 1 || !strings.HasPrefix(restored[0].Text, "LISTEN_FDNAMES=arena:journal ") {
		t.Fatalf("after the live update the daemon reported %v, want arena:journal back", restored)
	}
	t.Logf("daemon after the live update: %s", restored[0].Text)
	console := strings.Join(res.Console, "\n")
	for _, want := range []string{
		"prepare: answered by luoinit, PID 1",
		`workload "sdstore": fd "conn" in its fd store is not carried across the live update: socket: LUO preserves memfds only`,
		`workload "sdstore": optional fd "conn" dropped: socket: LUO preserves memfds only`,
		`preserved sdstore/arena (memfd, 4.0 MiB, from the fd store) in session "luoinit.sdstore" token 1`,
		`preserved sdstore/journal (memfd, 64.0 KiB, from the fd store) in session "luoinit.sdstore" token 2`,
		`workload "sdstore" started as pid`,
		`(LISTEN_FDNAMES=arena:journal)`,
		`session "luoinit.sdstore" finished`,
	} {
		if !strings.Contains(console, want) {
			t.Errorf("the console lacks %q", want)
		}
	}
	if strings.Contains(console, "scratch") && !strings.Contains(console, `FDSTOREREMOVE=1: 1 fds named "scratch" removed`) {
		t.Errorf("the scratch memfd was not removed from the store by FDSTOREREMOVE=1")
	}
	var report []string
	for _, line := range res.Console {
		if strings.Contains(line, "restore report: boot updated") {
			report = readyLine.FindStringSubmatch(line)
		}
		if strings.Contains(line, "restore report") || strings.Contains(line, "blackout:") {
			t.Log(line)
		}
	}
	if report == nil || report[1] != "2" {
		t.Fatalf("the restore report after the live update does not count sdstore back in service at READY=1 with 2 fds")
	}
	t.Logf("sdstore back in service (READY=1) %s after init start", report[2])
	if st := res.Find("SD_STATE"); len(st) != 1 || !strings.HasPrefix(st[0].Text, "state=finished boot=updated generation=1 ") {
		t.Errorf("luoinit's state after the live update: %v", st)
	}
}
