package scenarios

import (
	"strings"
	"testing"
	"time"

	"github.com/luoinit/luoinit/tests/vm"
)

// luoFaultsConfig: kv keeps two memfds (arena, index) and reports what
// came back rather than failing on a missing one; kw keeps one; the driver
// runs the live updates into the faults kernel (luotest luofaults).
func luoFaultsConfig() string {
	return "version = 1\n" +
		workloadTOML("kv", `, "--memfds", "arena:65536:31,index:4096:32", "--allow-missing"`, "arena", "index") +
		workloadTOML("kw", `, "--memfds", "w:4096:33"`, "w") + "  optional = true\n" + `
[[workload]]
name = "driver"
argv = ["/bin/luotest", "workload", "luofaults"]
handoff = "socket"
`
}

// TestLUOFaults: the kernel itself fails, in the faults variant of the
// default kernel (tests/kernel/luo-faults.patch), three live updates in a
// row, each judged on its own boot's console:
//
//  1. RETRIEVE_FD of kv's token 2 fails (EIO) and FINISH of kv's session
//     fails twice: "index" is named lost, "arena" and kw's fd are
//     delivered and verified, the state is degraded with lost=1, FINISH is
//     retried, each failure logged, and done at the third try.
//  2. FINISH of kw's session always fails: every fd is delivered, FINISH
//     is tried three times and reported. kw's memfd then stays preserved
//     in the kernel's incoming session, so the next update cannot
//     preserve it again: EBUSY, explained, and the fd (optional) dropped.
//  3. The incoming sessions cannot be deserialised (every open of
//     /dev/liveupdate is EIO): nothing is retrieved, the config's
//     workloads start without fds, the state is degraded with the reason;
//     a dry run of a next update is refused, explained.
func TestLUOFaults(t *testing.T) {
	k, faults := kernel(t), kernelEnv(t, vm.EnvKernelFaults)
	img := luoinitImage(t, "luofaults.cpio", luoFaultsConfig(),
		vm.File{Guest: "boot/bzImage-faults", Host: faults.BzImage})
	t.Logf("booting %s, each live update into %s", k.Version, faults.Version)
	res := runVM(t, img, "liveupdate=on", 8*time.Minute)
	if res.Boots != 4 {
		t.Fatalf("%d kernels booted, want 4", res.Boots)
	}
	boots := res.BootConsoles()
	has := func(boot int, text string) bool {
		for _, l := range boots[boot] {
			if strings.Contains(l, text) {
				return true
			}
		}
		return false
	}
	states := res.Find("LUOFAULT_STATE")
	if len(states) != 4 {
		t.Fatalf("%d state reports, want one per boot: %v", len(states), states)
	}
	check := func(boot int, what string, texts ...string) {
		t.Helper()
		for _, text := range texts {
			if !has(boot, text) {
				t.Errorf("update %d (%s): the console does not say %q", boot, what, text)
			}
		}
	}

	// 1: a lost fd, FINISH retried.
	check(1, "RETRIEVE_FD fails",
		"injected fault: RETRIEVE_FD of token 2 in session luoinit.kv: EIO",
		`workload "kv" fd "index" (session "luoinit.kv" token 2) lost: `,
		"LUOTEST:RECEIVED kv arena=verified index=missing",
		"LUOTEST:RESTORED kw 1",
		`session "luoinit.kv": FINISH failed (try 1 of 3)`,
		`session "luoinit.kv": FINISH failed (try 2 of 3)`,
		`session "luoinit.kv": FINISH done at try 3 of 3`)
	if s := states[1].Text; !strings.Contains(s, "state=degraded") || !strings.Contains(s, "lost=1") {
		t.Errorf("update 1: state %q, want degraded with lost=1", s)
	}

	// 2: FINISH never works; every fd delivered all the same.
	check(2, "FINISH fails",
		"LUOTEST:RECEIVED kv arena=verified index=verified",
		"LUOTEST:RESTORED kw 1",
		`session "luoinit.kw": FINISH failed (try 2 of 3)`,
		`FINISH failed 3 times: the kernel keeps session "luoinit.kw", and the files in it stay preserved`,
		// the next update, from this boot: kw's memfd cannot be carried
		`workload "kw": optional fd "w" (memfd) dropped:`, "EBUSY", "in an incoming session that was never FINISHed")
	if has(2, `session "luoinit.kw": FINISH done`) {
		t.Errorf("update 2: FINISH of luoinit.kw is said done; the kernel refused it every time")
	}
	if s := states[2].Text; !strings.Contains(s, "state=degraded") || !strings.Contains(s, "lost=0") {
		t.Errorf("update 2: state %q, want degraded (a session unfinished) with lost=0", s)
	}

	// 3: the incoming state unreadable, and no live update after it.
	check(3, "deserialisation fails",
		"injected fault: the incoming sessions cannot be deserialized: EIO",
		"but its state did not come back: /dev/liveupdate gives EIO: the kernel could not deserialise the incoming sessions",
		"LUOTEST:FRESH kv", "LUOTEST:FRESH kw",
		"refuses every open until the next cold boot: no live update can be prepared before then",
		"LUOTEST:LUOFAULT_NEXT exit=1")
	if s := states[3].Text; !strings.Contains(s, "state=degraded") || !strings.Contains(s, "input/output error") {
		t.Errorf("update 3: state %q, want degraded, its reason naming EIO", s)
	}
	for i, s := range states {
		t.Logf("boot %d: %s", i+1, s.Text)
	}
}
