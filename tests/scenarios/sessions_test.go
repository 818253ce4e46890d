package scenarios

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/luoinit/luoinit/status"
	"github.com/luoinit/luoinit/tests/vm"
)

// The workloads of TestOwnedSessions. The kernel's selftests decide their
// stage by whether their state session came back, but insist on being
// told it too: stage 2 needs "-s 2". The config luoinit starts on the cold
// boot runs them bare (stage 1); the config given to `luoinit prepare`
// describes the workloads of the next kernel, and there they run with
// "-s 2". Neither the selftests nor luoinit are changed for it.
var selftestSessions = map[string][]string{
	"luo_kexec_simple":  {"test-session", "kexec_simple_state"},
	"luo_multi_session": {"multi-test-empty-1", "multi-test-empty-2", "multi-test-files-1", "multi-test-files-2", "kexec_multi_state"},
	"luo_stress_files":  {"kexec_many_files_state", "many_files_session"},
}

var selftestPassed = map[string]string{
	"luo_kexec_simple":  "--- SIMPLE KEXEC TEST PASSED ---",
	"luo_multi_session": "--- MULTI-SESSION KEXEC TEST PASSED ---",
	"luo_stress_files":  "--- MANY-FILES KEXEC TEST PASSED (500 files) ---",
}

func sessionsConfig(next bool) string {
	var b strings.Builder
	b.WriteString("version = 1\n")
	stage := ""
	if next {
		stage = `, "-s", "2"`
	}
	for _, t := range vm.LUOSelftests {
		// A selftest that finds /dev/liveupdate busy (another workload
		// has it open) exits with KSFT_SKIP (4): started again.
		fmt.Fprintf(&b, "\n[[workload]]\nname = %q\nargv = [\"/bin/%s\"%s]\nhandoff = \"none\"\nrestart = \"on-failure\"\n", t, t, stage)
	}
	b.WriteString(`
[[workload]]
name = "leaver"
argv = ["/bin/luotest", "workload", "owner", "--name", "leaver", "--session", "own-leave"]
handoff = "none"
sessions = "leave"

[[workload]]
name = "taker"
argv = ["/bin/luotest", "workload", "owner", "--name", "taker", "--session", "own-retrieve", "--retrieve"]
handoff = "socket"
sessions = "retrieve"

  [[workload.fd]]
  name = "data"
`)
	if !next {
		b.WriteString(`
[[workload]]
name = "hijack"
argv = ["/bin/luotest", "workload", "owner", "--name", "hijack", "--session", "luoinit.x"]
handoff = "none"
`)
	}
	fmt.Fprintf(&b, `
[[workload]]
name = "driver"
argv = ["/bin/luotest", "workload", "sessdriver", "--expect", %q, "--workloads", %q]
handoff = "none"
`, strings.Join(append(ownedSessionNames(), "luoinit.x"), ","), strings.Join(append(append([]string(nil), vm.LUOSelftests...), "leaver", "taker"), ","))
	return b.String()
}

// ownedSessionNames: every session the workloads own across the update.
func ownedSessionNames() []string {
	var out []string
	for _, t := range vm.LUOSelftests {
		out = append(out, selftestSessions[t]...)
	}
	return append(out, "own-leave", "own-retrieve")
}

// TestOwnedSessions: workloads that create and own their LUO sessions,
// with luoinit as PID 1 on both sides and `luoinit prepare` answered by
// it. The kernel's selftests luo_kexec_simple, luo_multi_session and
// luo_stress_files (500 memfds), built from the harness's kernel source
// and unmodified, run with handoff = "none": their daemon child holding
// the sessions is found in /proc by its LUOINIT_WORKLOAD, its sessions
// held by prepare across its SIGTERM, and stage 2 passes in the new
// kernel. "leaver" (sessions = "leave") is stopped with SIGTERM and
// retrieves its session itself; "taker" (sessions = "retrieve") pushes
// its session fd and gets it back from PID 1 over the handoff socket,
// then retrieves and FINISHes it; data verified. A first prepare is
// refused because workload "hijack" holds "luoinit.x": refused before any
// freeze, every workload untouched. In the new kernel `luoinit status
// --wait finished` returns, generation 1, and the manifest, the log and
// the status name every session.
func TestOwnedSessions(t *testing.T) {
	k := kernel(t)
	g := luotest(t)
	dir := t.TempDir()
	bins, err := vm.BuildLUOSelftests(k, dir)
	if err != nil {
		t.Fatal(err)
	}
	files := []vm.File{
		{Guest: "init", Host: luoinitBin},
		{Guest: "bin/luoinit", Host: luoinitBin},
		{Guest: "bin/luotest", Host: g},
		{Guest: "etc/luoinit/config.toml", Host: writeTemp(t, "config.toml", sessionsConfig(false))},
		{Guest: "etc/luoinit/next.toml", Host: writeTemp(t, "next.toml", sessionsConfig(true))},
		{Guest: vm.GuestKernel, Host: k.BzImage},
	}
	for name, p := range bins {
		files = append(files, vm.File{Guest: "bin/" + name, Host: p})
	}
	img, err := vm.Image(dir, "sessions.cpio", files...)
	if err != nil {
		t.Fatal(err)
	}
	res := runVM(t, img, "liveupdate=on", 10*time.Minute)
	if res.Boots != 2 {
		t.Fatalf("%d kernels booted, want 2", res.Boots)
	}
	console := strings.Join(res.Console, "\n")

	// The refusal, before any freeze, named workload, session and pid.
	refused := res.Find("REFUSED")
	if len(refused) != 1 || !strings.Contains(refused[0].Text, `workload "hijack" holds LUO session "luoinit.x"`) || !strings.Contains(refused[0].Text, "pid ") {
		t.Fatalf("REFUSED: %v", refused)
	}
	t.Logf("refused: %s", refused[0].Text)
	if u := res.Find("UNTOUCHED"); len(u) != 1 {
		t.Fatalf("no UNTOUCHED marker after the refusal")
	}

	// No selftest run failed, in either kernel: each exit is 0 (passed) or
	// KSFT_SKIP (4, /dev/liveupdate busy, started again); a failure (1)
	// followed by a passing retry is still a failure.
	exits := regexp.MustCompile(`workload "(luo_\w+)" \(pid \d+\) exited with status (\d+)`)
	skipped := 0
	for _, line := range res.Console {
		m := exits.FindStringSubmatch(line)
		switch {
		case m == nil || m[2] == "0":
		case m[2] == "4":
			skipped++
		default:
			t.Errorf("selftest %s failed (exit status %s): %s", m[1], m[2], strings.TrimSpace(line))
		}
	}
	t.Logf("selftest runs that found /dev/liveupdate busy and were started again: %d", skipped)
	// Stage 2 of every selftest passed in the new kernel.
	for _, st := range vm.LUOSelftests {
		if !strings.Contains(console, selftestPassed[st]) {
			t.Errorf("%s: stage 2 did not pass (%q not on the console)", st, selftestPassed[st])
		}
	}
	ok := markers(res, "OWNER_OK")
	if ok["leaver"] != "own-leave leave" || ok["taker"] != "own-retrieve retrieve" {
		t.Errorf("owners after the live update: %v", ok)
	}

	// luoinit status --wait finished returned in the new kernel.
	waited := res.Find("WAITED")
	if len(waited) != 1 || !strings.HasPrefix(waited[0].Text, "exit=0 ") {
		t.Fatalf("WAITED: %v", waited)
	}
	t.Logf("luoinit status --wait finished: %s", waited[0].Text)
	js := res.Find("STATUS_JSON")
	if len(js) != 1 {
		t.Fatalf("no STATUS_JSON")
	}
	t.Logf("luoinit status --json: %s", js[0].Text)
	var st status.Status
	if err := json.Unmarshal([]byte(js[0].Text), &st); err != nil {
		t.Fatal(err)
	}
	if st.State != status.Finished || st.Boot != status.BootUpdated || st.Generation != 1 || st.Lost != 0 {
		t.Errorf("status: state %s boot %s generation %d lost %d; want finished, updated, 1, 0", st.State, st.Boot, st.Generation, st.Lost)
	}
	inStatus := map[string]status.Session{}
	for _, w := range st.Workloads {
		for _, s := range w.Sessions {
			inStatus[s.Name] = s
		}
		if w.Name == "taker" && w.FDsDelivered != 1 {
			t.Errorf("taker: %d fds delivered, want 1 (and its session)", w.FDsDelivered)
		}
	}
	if s := inStatus["own-retrieve"]; s.Result != status.SessionDelivered || s.Via != "push" {
		t.Errorf("own-retrieve in the status: %+v, want delivered, via push", s)
	}
	for _, name := range ownedSessionNames() {
		if _, ok := inStatus[name]; !ok {
			t.Errorf("the status does not name session %q", name)
		}
		if !strings.Contains(console, fmt.Sprintf("holding its LUO session %q", name)) {
			t.Errorf("prepare's log does not name session %q", name)
		}
		if !strings.Contains(console, fmt.Sprintf("owns session %q", name)) {
			t.Errorf("the manifest (luoinit manifest show) does not name session %q", name)
		}
		if !strings.Contains(console, fmt.Sprintf("its session %q", name)) && !strings.Contains(console, fmt.Sprintf("took its session %q", name)) {
			t.Errorf("PID 1's log in the new kernel does not name session %q", name)
		}
	}
	if _, ok := inStatus["luoinit.x"]; ok {
		t.Errorf("the refused session got into the manifest")
	}
	// The selftest daemons were found by their environment and stopped.
	for _, st := range vm.LUOSelftests {
		if !strings.Contains(console, fmt.Sprintf("workload %q: holding its LUO session", st)) {
			t.Errorf("%s: its sessions were not taken from its daemon", st)
		}
	}
}
