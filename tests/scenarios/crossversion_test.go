package scenarios

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/luoinit/luoinit/tests/vm"
)

// The cross-version scenarios: kvcache under luoinit, its 1000 keys in a
// preserved memfd, live-updated from one kernel version to another, and
// refused by the preflight when the next kernel could not read the state.

// kernelEnv returns the kernel named by env, skipping (or failing, under
// `make test`) when it is not set.
func kernelEnv(t *testing.T, env string) *vm.Kernel {
	t.Helper()
	k, err := vm.FindKernelEnv(env)
	if err != nil {
		if vm.Required() || !errors.Is(err, vm.ErrNoKernel) {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return k
}

// runDemo boots boot with the kvcache demo image and returns the result
// of a passing guest.
func runDemo(t *testing.T, boot *vm.Kernel, d vm.KVDemo, timeout time.Duration) *vm.Result {
	t.Helper()
	d.Running = boot
	img, err := vm.KVDemoImageFor(t.TempDir(), d)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("booting %s (%s), next kernel %s", boot.Version, boot.BzImage, d.Next)
	res, err := vm.Run(context.Background(), vm.Config{
		Kernel: boot.BzImage, Initramfs: img, Append: "liveupdate=on", Timeout: timeout, Log: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("on kernel %s (%s): %s in %v", boot.Version, res.Accel, res.Message, res.Elapsed.Round(time.Millisecond))
	if !res.Passed {
		t.Fatalf("failed: %s", res.Message)
	}
	return res
}

// crossUpdate live-updates kvcache from kernel from to kernel to and
// checks the keys, the restore report and the state file.
func crossUpdate(t *testing.T, from, to *vm.Kernel, demoArgs ...string) *vm.Result {
	if from.Version == to.Version {
		t.Fatalf("both kernels are %s: not a cross-version update", from.Version)
	}
	res := runDemo(t, from, vm.KVDemo{Next: to.BzImage, Updates: 1, DemoArgs: demoArgs}, 6*time.Minute)
	if res.Boots != 2 {
		t.Fatalf("%d kernels booted, want 2", res.Boots)
	}
	states, after := res.Find("DEMO_STATE"), res.Find("DEMO_AFTER")
	if len(states) != 1 || len(after) != 1 {
		t.Fatalf("restores reported: %v %v, want one", states, after)
	}
	want := fmt.Sprintf("from_kernel=%s to_kernel=%s", from.Version, to.Version)
	if st := states[0].Text; !strings.HasPrefix(st, "state=finished boot=updated generation=1 ") || !strings.Contains(st, want) {
		t.Errorf("state file %q, want finished, updated, generation 1 and %q", st, want)
	}
	if !strings.HasPrefix(after[0].Text, "keys=1000 verified=true") {
		t.Errorf("kvcache after the update: %q", after[0].Text)
	}
	console := strings.Join(res.Console, "\n")
	for _, w := range []string{
		fmt.Sprintf("updated from %s to %s", from.Version, to.Version), // the restore report
		"preflight: ok   LUO: luo-v", "in both kernels",
		"preflight: ok   running kernel: writes kho-v",
	} {
		if !strings.Contains(console, w) {
			t.Errorf("the console lacks %q", w)
		}
	}
	for _, line := range res.Console {
		if strings.Contains(line, "restore report") || strings.Contains(line, "preflight: ") {
			t.Log(line)
		}
	}
	return res
}

// TestCrossVersionUp: a live update from the newest kernel of the
// previous series (7.2.x) to the default (7.3.x): all 1000 keys back.
func TestCrossVersionUp(t *testing.T) {
	crossUpdate(t, kernelEnv(t, vm.EnvKernelPrev), kernel(t))
}

// TestCrossVersionDown: the other way, 7.3.x to 7.2.x, with
// liveupdate=off in --append: luoinit ensures liveupdate=on (and kho=on)
// on every next command line, says what it replaced, and the update
// carries the state.
func TestCrossVersionDown(t *testing.T) {
	res := crossUpdate(t, kernel(t), kernelEnv(t, vm.EnvKernelPrev), "--append", "liveupdate=off")
	console := strings.Join(res.Console, "\n")
	if !strings.Contains(console, "(luoinit replaced liveupdate=off)") {
		t.Errorf("the preflight did not say it replaced liveupdate=off")
	}
}

// TestPreflightRefusesABI: a prepare into the default kernel rebuilt with
// another LUO ABI string is refused by the preflight before anything is
// preserved or stopped: kvcache keeps serving every key, no kexec image is
// loaded, the sessions are free (a dry run creates them), one kernel
// boots.
func TestPreflightRefusesABI(t *testing.T) {
	k, abi := kernel(t), kernelEnv(t, vm.EnvKernelABI)
	res := runDemo(t, k, vm.KVDemo{Next: abi.BzImage, Updates: 1, DemoArgs: []string{"--expect-refusal", "LUO: the next kernel reads luo-v"}}, 5*time.Minute)
	if res.Boots != 1 {
		t.Fatalf("%d kernels booted, want 1 (nothing may kexec)", res.Boots)
	}
	if len(res.Find("REFUSED_SERVING")) != 1 {
		t.Errorf("no REFUSED_SERVING marker: kvcache was not checked after the refusal")
	}
	for _, m := range res.Find("KHO_DEBUGFS") {
		t.Logf("KHO debugfs shows: %s", m.Text)
	}
	var refusedLUO, goodPassed, debugfs bool
	for _, m := range res.Find("PREFLIGHT") {
		t.Logf("luoinit preflight: %s", m.Text)
		refusedLUO = refusedLUO || strings.Contains(m.Text, "FAIL LUO: the next kernel reads luo-v6 but the running kernel writes luo-v5")
		goodPassed = goodPassed || strings.Contains(m.Text, "can take over the live update state")
		debugfs = debugfs || strings.Contains(m.Text, "writes kho-v4 luo-v5 memfd-v2 memblock-v1 reserve-mem-v1 (from image /boot/vmlinuz-"+k.Version+" and KHO debugfs")
	}
	if !refusedLUO || !goodPassed || !debugfs {
		t.Errorf("luoinit preflight: LUO refusal seen %v, the good kernel passed %v, KHO debugfs read %v", refusedLUO, goodPassed, debugfs)
	}
}
