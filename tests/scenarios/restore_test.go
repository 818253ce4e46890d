package scenarios

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/luoinit/luoinit/status"
	"github.com/luoinit/luoinit/tests/vm"
	"github.com/luoinit/luoinit/wellknown"
)

// The restore scenarios boot luoinit as PID 1: after a live update
// prepared by `luoinit prepare` (TestRestore, TestRestoreFailures), on a
// cold boot (TestColdBoot) and on a degraded one (TestDegradedBoot). The
// workloads are luotest in "auto" mode, which makes, pushes, receives and
// verifies memfds; the "checker" workload waits for luoinit's state file,
// signals PID 1 with SIGTERM and SIGHUP, makes an orphan, checks for
// zombies, reports and has PID 1 reboot the VM.

const workloadTmpl = `
[[workload]]
name = %q
argv = ["/bin/luotest", "workload", "auto", "--name", %q%s]
handoff = "socket"
%s`

func workloadTOML(name, args string, fds ...string) string {
	var b strings.Builder
	for _, f := range fds {
		fmt.Fprintf(&b, "\n  [[workload.fd]]\n  name = %q\n", f)
	}
	return fmt.Sprintf(workloadTmpl, name, name, args, b.String())
}

func checkerTOML(state string) string {
	return fmt.Sprintf(`
[[workload]]
name = "checker"
argv = ["/bin/luotest", "workload", "checker", "--state", %q]
handoff = "socket"
`, state)
}

// fullConfig: one workload with 100 fds, one with a 256 MiB memfd, one
// with two, one with none, and the checker.
func fullConfig(state string, extra string) string {
	many := make([]string, 100)
	for i := range many {
		many[i] = fmt.Sprintf("m%03d", i)
	}
	return "version = 1\n" +
		workloadTOML("kv", `, "--memfds", "arena:16777216:21,index:4096:22"`, "arena", "index") +
		workloadTOML("many", `, "--count", "100"`, many...) +
		workloadTOML("big", `, "--memfds", "heap:268435456:23"`, "heap") +
		workloadTOML("plain", "") +
		extra +
		checkerTOML(state)
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// runVM boots img on the test kernel and fails the test unless the guest
// passed.
func runVM(t *testing.T, img, appendArgs string, timeout time.Duration) *vm.Result {
	t.Helper()
	k := kernel(t)
	t.Logf("kernel %s (%s)", k.Version, k.BzImage)
	res, err := vm.Run(context.Background(), vm.Config{
		Kernel: k.BzImage, Initramfs: img, Append: appendArgs, Timeout: timeout, Log: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("on kernel %s (%s): %s in %v", k.Version, res.Accel, res.Message, res.Elapsed.Round(time.Millisecond))
	if !res.Passed {
		t.Fatalf("failed: %s", res.Message)
	}
	return res
}

// bootLUOinit boots img and checks what the checker workload reported.
func bootLUOinit(t *testing.T, img, appendArgs string, timeout time.Duration) *vm.Result {
	t.Helper()
	res := runVM(t, img, appendArgs, timeout)
	if s := res.Find("SIGNALS"); len(s) != 1 {
		t.Fatalf("the checker did not confirm PID 1 survived SIGTERM/SIGHUP without zombies")
	}
	// The orphan ran, ended, and was reaped before the zombie check.
	if o := res.Find("ORPHAN"); len(o) != 1 || !strings.HasPrefix(o[0].Text, "pid=") {
		t.Fatalf("the checker did not see its orphan reaped: %v", o)
	} else {
		t.Logf("orphan: %s", o[0].Text)
	}
	return res
}

// liveUpdateImages: stage 1 is luotest with luoinit at /bin/luoinit; the
// second initramfs has luoinit as /init, and the extra files.
func liveUpdateImages(t *testing.T, config string, extra ...vm.File) string {
	k := kernel(t)
	g := luotest(t)
	cfg := writeTemp(t, "config.toml", config)
	dir := t.TempDir()
	second, err := vm.Image(dir, "initramfs2.cpio", append([]vm.File{
		{Guest: "init", Host: luoinitBin},
		{Guest: "bin/luotest", Host: g},
		{Guest: "etc/luoinit/config.toml", Host: cfg}}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	first, err := vm.Image(dir, "initramfs1.cpio",
		vm.File{Guest: "init", Host: g},
		vm.File{Guest: "bin/luotest", Host: g},
		vm.File{Guest: "bin/luoinit", Host: luoinitBin},
		vm.File{Guest: "etc/luoinit/config.toml", Host: cfg},
		vm.File{Guest: vm.GuestKernel, Host: k.BzImage},
		vm.File{Guest: vm.GuestInitramfs2, Host: second})
	if err != nil {
		t.Fatal(err)
	}
	return first
}

// luoinitImage: one initramfs booted with luoinit as /init (and at
// /bin/luoinit, for the prepares), luotest, config, and the extra files.
func luoinitImage(t *testing.T, name, config string, extra ...vm.File) string {
	t.Helper()
	img, err := vm.Image(t.TempDir(), name, append([]vm.File{
		{Guest: "init", Host: luoinitBin},
		{Guest: "bin/luoinit", Host: luoinitBin},
		{Guest: "bin/luotest", Host: luotest(t)},
		{Guest: "etc/luoinit/config.toml", Host: writeTemp(t, "config.toml", config)}}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func markers(res *vm.Result, kind string) map[string]string {
	out := map[string]string{}
	for _, m := range res.Find(kind) {
		name, rest, _ := strings.Cut(m.Text, " ")
		out[name] = rest
	}
	return out
}

var ackLine = regexp.MustCompile(`workload "([^"]+)" \(pid \d+\) acknowledged (\d+) fds in (\S+); session "[^"]+" finished: (\w+)`)

// TestRestore: the full cycle with luoinit on both sides. Every fd of
// every workload comes back verified, no workload holds an fd it was not
// given, every session is finished, PID 1 survives SIGTERM and SIGHUP
// and reaps orphans.
func TestRestore(t *testing.T) {
	res := bootLUOinit(t, liveUpdateImages(t, fullConfig("finished", "")), "liveupdate=on luotest.scenario=restore", 8*time.Minute)
	if res.Boots != 2 {
		t.Fatalf("%d kernels booted, want 2", res.Boots)
	}
	restored := markers(res, "RESTORED")
	for name, n := range map[string]string{"kv": "2", "many": "100", "big": "1"} {
		if got := restored[name]; !strings.HasPrefix(got, n+" ") {
			t.Errorf("workload %s: RESTORED %q, want %s fds", name, got, n)
		}
	}
	// plain has no fds: it gets an empty handoff, as on a cold boot.
	if _, ok := markers(res, "FRESH")["plain"]; !ok {
		t.Errorf("workload plain did not start with an empty handoff")
	}
	clean := markers(res, "FDCHECK")
	for _, name := range []string{"kv", "many", "big", "plain"} {
		if clean[name] != "clean" {
			t.Errorf("workload %s: fd check %q", name, clean[name])
		}
	}
	acks := map[string]bool{}
	for _, line := range res.Console {
		if m := ackLine.FindStringSubmatch(line); m != nil {
			acks[m[1]] = true
			if m[1] != "plain" && m[1] != "checker" && m[4] != "true" {
				t.Errorf("workload %s: session not finished: %s", m[1], line)
			}
			if m[1] == "many" {
				t.Logf("luoinit handed 100 fds to workload many in %s", m[3])
			}
		}
	}
	for _, name := range []string{"kv", "many", "big"} {
		if !acks[name] {
			t.Errorf("no acknowledgement from workload %s in luoinit's log", name)
		}
	}
	for _, line := range res.Console {
		if strings.Contains(line, "restore report") {
			t.Log(line)
		}
	}
}

// TestRestoreFailures: a workload that exits before acknowledging and
// one that never connects do not hold up the others; luoinit keeps their
// fds and says so, and the state ends degraded.
func TestRestoreFailures(t *testing.T) {
	extra := workloadTOML("quitter", `, "--memfds", "q:4096:31", "--die-before-ack"`, "q") +
		workloadTOML("mute", `, "--memfds", "s:4096:32", "--never-connect"`, "s")
	res := bootLUOinit(t, liveUpdateImages(t, "version = 1\n"+workloadTOML("kv", `, "--memfds", "arena:1048576:21"`, "arena")+extra+checkerTOML("degraded")),
		"liveupdate=on luotest.scenario=restore", 6*time.Minute)
	if r := markers(res, "RESTORED"); !strings.HasPrefix(r["kv"], "1 ") {
		t.Errorf("kv not restored next to the failing workloads: %v", r)
	}
	console := strings.Join(res.Console, "\n")
	for _, want := range []string{
		`workload "quitter"`, `workload "mute"`, "luoinit keeps its 1 fds",
	} {
		if !strings.Contains(console, want) {
			t.Errorf("luoinit's log lacks %q", want)
		}
	}
}

// TestColdBoot: no manifest: the config's workloads start without fds.
func TestColdBoot(t *testing.T) {
	g := luotest(t)
	cfg := writeTemp(t, "config.toml", "version = 1\n"+workloadTOML("kv", `, "--memfds", "arena:1048576:21"`, "arena")+checkerTOML("normal"))
	img, err := vm.Image(t.TempDir(), "cold.cpio",
		vm.File{Guest: "init", Host: luoinitBin},
		vm.File{Guest: "bin/luotest", Host: g},
		vm.File{Guest: "etc/luoinit/config.toml", Host: cfg})
	if err != nil {
		t.Fatal(err)
	}
	res := bootLUOinit(t, img, "liveupdate=on", 3*time.Minute)
	if _, ok := markers(res, "FRESH")["kv"]; !ok {
		t.Errorf("kv did not start fresh (with an empty handoff)")
	}
}

// TestTwoUpdates: one image, made once by `luoinit initramfs build`
// before the first boot, serves a cold boot and two live updates in a
// row: the kernel keeps it (retain_initrd) and prepare loads it as it is.
// Its sha256 on the host before the first boot equals what every boot
// read from /sys/firmware/initrd; it holds no manifest (its files are
// listed), yet after each update luoinit status says generation 1, then 2.
// kvcache's 1000 keys and every byte of the sd_notify daemon's fd store
// are back each time.
func TestTwoUpdates(t *testing.T) {
	k := kernel(t)
	dir := t.TempDir()
	sd := filepath.Join(dir, "sdstore")
	buildC(t, "tests/guest/sdstore/sdstore.c", sd)
	img, err := vm.KVDemoImageFor(dir, vm.KVDemo{Next: k.BzImage, Updates: 2, DemoArgs: []string{"--sdstore", "--agent", "--stranger-push"},
		Extra:       []vm.File{{Guest: "bin/sdstore", Host: sd}},
		ExtraConfig: sdstoreWorkload})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	sum := fmt.Sprintf("%x", sha256.Sum256(b))
	t.Logf("image %s: sha256 %s, %d bytes (before the first boot)", filepath.Base(img), sum, len(b))
	names, err := vm.ImageFiles(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("its files: %s", strings.Join(names, " "))
	for _, n := range names {
		if strings.Contains(n, "manifest") {
			t.Errorf("the image holds %s", n)
		}
	}
	res := runVM(t, img, "liveupdate=on", 8*time.Minute)
	if res.Boots != 3 {
		t.Fatalf("%d kernels booted, want 3", res.Boots)
	}
	booted := res.Find("DEMO_INITRD")
	if len(booted) != 3 {
		t.Fatalf("%d boots reported their image, want 3: %v", len(booted), booted)
	}
	for i, m := range booted {
		if want := fmt.Sprintf("sha256=%s bytes=%d manifest_in_root=false", sum, len(b)); m.Text != want {
			t.Errorf("boot %d booted %q, want %q", i+1, m.Text, want)
		}
	}
	t.Logf("sha256 after the second update: %s", booted[2].Text)
	// Each `luoinit prepare` was answered by the luoinit running as PID 1.
	answered := 0
	for _, line := range res.Console {
		if strings.Contains(line, "prepare: answered by luoinit, PID 1") {
			answered++
		}
	}
	if answered != 2 {
		t.Errorf("%d prepares answered by PID 1, want 2", answered)
	}
	// The second prepare's preflight knows what the running kernel writes
	// from the first one's record in the manifest PID 1 copied out.
	if !strings.Contains(strings.Join(res.Console, "\n"), "from luoinit's record of loading it (manifest "+wellknown.ManifestCopy+", generation 1)") {
		t.Errorf("the second preflight did not use the record of the first live update")
	}
	states, after, sds, js := res.Find("DEMO_STATE"), res.Find("DEMO_AFTER"), res.Find("DEMO_SDSTORE"), res.Find("DEMO_STATUS")
	if len(states) != 2 || len(after) != 2 || len(sds) != 2 || len(js) != 2 {
		t.Fatalf("%d restores reported, want 2: %v %v %v %v", len(states), states, after, sds, js)
	}
	for i, st := range states {
		if want := fmt.Sprintf("state=finished boot=updated generation=%d ", i+1); !strings.HasPrefix(st.Text, want) {
			t.Errorf("update %d: state %q, want it to start %q", i+1, st.Text, want)
		}
		if !strings.HasPrefix(after[i].Text, "keys=1000 verified=true") || !strings.Contains(after[i].Text, fmt.Sprintf("generation=%d", i+1)) {
			t.Errorf("update %d: kvcache reports %q", i+1, after[i].Text)
		}
		if !strings.HasPrefix(sds[i].Text, "ok ") {
			t.Errorf("update %d: sdstore reports %q", i+1, sds[i].Text)
		}
		var st2 status.Status
		if err := json.Unmarshal([]byte(js[i].Text), &st2); err != nil {
			t.Fatalf("update %d: luoinit status --json: %v: %s", i+1, err, js[i].Text)
		}
		if st2.Generation != uint64(i+1) || st2.Boot != status.BootUpdated || st2.State != status.Finished || st2.Lost != 0 {
			t.Errorf("update %d: luoinit status --json says generation %d boot %s state %s lost %d", i+1, st2.Generation, st2.Boot, st2.State, st2.Lost)
		}
	}
	t.Logf("luoinit status --json after the second update: %s", js[1].Text)
	checkAgentFreeze(t, res.Console, 2)
	// Without --log-fds, a line per workload, none per fd.
	summary := 0
	for _, line := range res.Console {
		if strings.Contains(line, `preserved kvcache: 1 fd (1 memfd, 64.0 MiB) in session "luoinit.kvcache", token 1, in `) {
			summary++
		}
		if strings.Contains(line, "preserved kvcache/arena") {
			t.Errorf("a per-fd line without --log-fds: %s", line)
		}
	}
	if summary != 2 {
		t.Errorf("%d lines summed up kvcache's preserved fds, want one per prepare (2)", summary)
	}
	// PID 1 answered each prepare, so a push for kvcache from the demo (a
	// workload of the same uid, outside kvcache's process tree) was refused.
	stranger := res.Find("STRANGER_PUSH")
	if len(stranger) != 2 {
		t.Fatalf("%d stranger pushes reported, want 2", len(stranger))
	}
	for i, s := range stranger {
		if !strings.Contains(s.Text, `workload "kvcache" is pid `) || !strings.Contains(s.Text, "which is not in its process tree") {
			t.Errorf("prepare %d: the stranger's push for kvcache: %q, want it refused as outside kvcache's process tree", i+1, s.Text)
		}
	}
	t.Logf("a stranger's push: %s", stranger[0].Text)
}

// checkAgentFreeze checks the freezes of n prepares run by the demo as an
// update agent (--agent: SIGTERM does not end it while its prepare runs,
// stop_timeout 60s): each stopped the agent with SIGSTOP instead of
// waiting for it, and took less than its stop_timeout.
func checkAgentFreeze(t *testing.T, console []string, n int) {
	t.Helper()
	spared, freezes := 0, regexp.MustCompile(`freeze took (\S+): waiting for the workloads to exit (\S+), luoinit's own steps (\S+)\)`)
	var took []string
	for _, line := range console {
		if strings.Contains(line, `workload "demo" (pid `) && strings.Contains(line, "runs the process that asked for this live update") {
			spared++
		}
		if strings.Contains(line, `workload "demo"`) && strings.Contains(line, "did not exit within") {
			t.Errorf("the freeze waited for the agent: %s", line)
		}
		if m := freezes.FindStringSubmatch(line); m != nil {
			d, err := time.ParseDuration(m[1])
			if err != nil || d >= 60*time.Second {
				t.Errorf("freeze took %s (%v), not less than the agent's stop_timeout", m[1], err)
			}
			took = append(took, fmt.Sprintf("%s (workloads' exit %s, luoinit's steps %s)", m[1], m[2], m[3]))
		}
	}
	if spared != n || len(took) != n {
		t.Errorf("%d prepares stopped the agent with SIGSTOP and %d freezes were reported, want %d of each", spared, len(took), n)
	}
	t.Logf("freezes with the requester stopped, not awaited: %s", strings.Join(took, "; "))
}

// TestPID1PrepareCancel: a `luoinit prepare --no-reboot` handed to the
// luoinit that runs as PID 1, then cancelled with SIGTERM: exit 1,
// sessions closed, kexec image unloaded, the workload still running, and
// a dry run with the same session names works at once.
func TestPID1PrepareCancel(t *testing.T) {
	k := kernel(t)
	g := luotest(t)
	cfg := writeTemp(t, "config.toml", "version = 1\n"+workloadTOML("kv", `, "--memfds", "arena:1048576:21"`, "arena")+`
[[workload]]
name = "canceller"
argv = ["/bin/luotest", "workload", "pid1cancel"]
handoff = "socket"
`)
	img, err := vm.Image(t.TempDir(), "pid1cancel.cpio",
		vm.File{Guest: "init", Host: luoinitBin},
		vm.File{Guest: "bin/luoinit", Host: luoinitBin},
		vm.File{Guest: "bin/luotest", Host: g},
		vm.File{Guest: "etc/luoinit/config.toml", Host: cfg},
		vm.File{Guest: vm.GuestKernel, Host: k.BzImage})
	if err != nil {
		t.Fatal(err)
	}
	res := runVM(t, img, "liveupdate=on", 4*time.Minute)
	if res.Boots != 1 || len(res.Find("CANCELLED")) != 1 {
		t.Fatalf("boots %d, CANCELLED markers %d; want 1 and 1", res.Boots, len(res.Find("CANCELLED")))
	}
}

// TestNetwork: loopback, a dummy with two IPv4 and one IPv6 address (and
// MTU 1400), a veth pair, a bridge with a veth end as port, a vlan on the
// dummy, a default and a static route: recorded by luoinit prepare,
// applied by luoinit as PID 1 before any workload starts, and the
// normalised netlink dump taken in the new kernel equals the one before.
func TestNetwork(t *testing.T) {
	config := "version = 1\n\n[network]\ncarry = \"all\"\n" +
		workloadTOML("kv", `, "--memfds", "arena:1048576:21"`, "arena") + `
[[workload]]
name = "netcheck"
argv = ["/bin/luotest", "workload", "netcheck"]
handoff = "socket"
`
	res := runVM(t, liveUpdateImages(t, config), "liveupdate=on luotest.scenario=network", 5*time.Minute)
	if res.Boots != 2 {
		t.Fatalf("%d kernels booted, want 2", res.Boots)
	}
	dumps := map[string]string{}
	for _, m := range res.Find("NETDUMP") {
		when, d, _ := strings.Cut(m.Text, " ")
		dumps[when] = d
	}
	before, after := dumps["before"], dumps["after"]
	if before == "" || before != after {
		t.Fatalf("the network differs after the live update:\nbefore:\n%s\nafter:\n%s",
			strings.ReplaceAll(before, " | ", "\n"), strings.ReplaceAll(after, " | ", "\n"))
	}
	// The dump is luotest's own reader of rtnetlink and /sys/class/net
	// (tests/guest/luotest/netread.go), not netconf's snapshot.
	for _, want := range []string{
		"addr 10.10.1.1/24 on dummy0", "addr fd00:10::1/64 on dummy0", "vlan 100 parent dummy0",
		"link veth1 type veth", "master br0", "route 192.168.50.0/24 via 10.10.1.254 dev dummy0 table 254 metric 100",
		"route default via 10.10.0.254 dev dummy0 table 254",
		"link bond0 type bond", "bond_mode active-backup ports dummy1,dummy2", "master bond0", "addr 10.40.0.1/24 on bond0",
		"route 172.16.0.0/16 via 10.40.0.254 dev bond0 table 100", "rule pref 1000 from 10.40.0.0/24 lookup 100",
	} {
		if !strings.Contains(before, want) {
			t.Errorf("the dump lacks %q: the scenario did not set it up or the reader missed it", want)
		}
	}
	for _, line := range res.Console {
		if strings.Contains(line, "network: the old kernel's network applied") {
			t.Logf("network restore: %s", line[strings.Index(line, "network:"):])
		}
	}
}
