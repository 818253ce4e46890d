package scenarios

import (
	"fmt"
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
// runs `luoinit prepare` twice and judges the results.
const sdstoreConfig = "version = 1\n" + sdstoreWorkload + `
[[workload]]
name = "driver"
argv = ["/bin/luotest", "workload", "sddriver", "--updates", "2"]
handoff = "socket"
`

// sdstoreWorkload is the sdstore daemon as a workload of luoinit.
const sdstoreWorkload = `
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
// on every boot) under names, plus a socket; `luoinit prepare`, answered
// by PID 1, preserves the memfds and reports the socket by name and
// reason; after the kexec the daemon gets both memfds back at fds 3 and 4
// with LISTEN_FDNAMES=arena:journal and LISTEN_PID its own pid, every
// byte, a stamp written after storing and the seals intact; its READY=1 is
// the moment the report counts it back in service. A second live update
// carries the same memfds again without the daemon storing them anew: PID
// 1's fd store kept them.
func TestSystemdFDStore(t *testing.T) {
	k := kernel(t)
	sd := filepath.Join(t.TempDir(), "sdstore")
	buildC(t, "tests/guest/sdstore/sdstore.c", sd)
	img := luoinitImage(t, "sdstore.cpio", sdstoreConfig,
		vm.File{Guest: "bin/sdstore", Host: sd},
		vm.File{Guest: vm.GuestKernel, Host: k.BzImage})
	res := runVM(t, img, "liveupdate=on", 8*time.Minute)
	if res.Boots != 3 {
		t.Fatalf("%d kernels booted, want 3", res.Boots)
	}
	if len(res.Find("SDSTORE_STORED")) != 1 {
		t.Fatalf("the daemon did not store its fds on the cold boot (and only then)")
	}
	restored := res.Find("SDSTORE_RESTORED")
	if len(restored) != 2 {
		t.Fatalf("the daemon reported %d restores, want 2: %v", len(restored), restored)
	}
	for i, r := range restored {
		if want := fmt.Sprintf("LISTEN_FDNAMES=arena:journal restores=%d ", i+1); !strings.HasPrefix(r.Text, want) {
			t.Errorf("after live update %d the daemon reported %q, want it to start %q", i+1, r.Text, want)
		}
		t.Logf("daemon after live update %d: %s", i+1, r.Text)
	}
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
	if n := strings.Count(console, "prepare: answered by luoinit, PID 1"); n != 2 {
		t.Errorf("%d prepares answered by PID 1, want 2", n)
	}
	if !strings.Contains(console, `workload "sdstore": optional fd "conn" dropped: not in the fd store`) {
		t.Errorf("the second prepare does not say the socket is gone from the store")
	}
	var ready []string
	for _, line := range res.Console {
		if strings.Contains(line, "restore report: boot updated") {
			if m := readyLine.FindStringSubmatch(line); m != nil && m[1] == "2" {
				ready = append(ready, m[2])
			}
		}
		if strings.Contains(line, "restore report") || strings.Contains(line, "blackout:") {
			t.Log(line)
		}
	}
	if len(ready) != 2 {
		t.Fatalf("the restore reports count sdstore back in service at READY=1 with 2 fds %d times, want 2", len(ready))
	}
	t.Logf("sdstore back in service (READY=1) %s after init start", strings.Join(ready, ", then "))
	states := res.Find("SD_STATE")
	if len(states) != 2 {
		t.Fatalf("%d states reported, want 2", len(states))
	}
	for i, st := range states {
		if want := fmt.Sprintf("state=finished boot=updated generation=%d ", i+1); !strings.HasPrefix(st.Text, want) {
			t.Errorf("luoinit's state after live update %d: %q, want it to start %q", i+1, st.Text, want)
		}
	}
}
