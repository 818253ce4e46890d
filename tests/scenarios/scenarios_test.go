// Package scenarios holds the VM tests: each boots the project's LUO
// kernel in QEMU with a guest program as PID 1, does a real kexec, and
// checks what the guest reports. Run them with `make vmtest`.
package scenarios

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/luoinit/luoinit/tests/vm"
)

var (
	buildOnce  sync.Once
	guestBin   string
	luoinitBin string
	buildErr   error
)

// kernel returns the VM-test kernel, skipping (or failing, under `make
// test`) when there is none.
func kernel(t *testing.T) *vm.Kernel {
	t.Helper()
	k, err := vm.FindKernel()
	if err != nil {
		if vm.Required() || !errors.Is(err, vm.ErrNoKernel) {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return k
}

func luotest(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "luotest-guest")
		if err != nil {
			buildErr = err
			return
		}
		guestBin = filepath.Join(dir, "luotest")
		luoinitBin = filepath.Join(dir, "luoinit")
		if buildErr = vm.BuildStatic("./tests/guest/luotest", guestBin); buildErr == nil {
			// The luoinittest tag: the manifest faults' hook (prepare/testhook.go).
			buildErr = vm.BuildStatic("./init", luoinitBin, "-tags", "luoinittest")
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return guestBin
}

// boot runs scenario name; the first initramfs also holds /bin/luoinit.
func boot(t *testing.T, name string) *vm.Result {
	k := kernel(t)
	img, err := vm.KexecImages(t.TempDir(), luotest(t), k.BzImage, vm.File{Guest: "bin/luoinit", Host: luoinitBin})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel %s (%s)", k.Version, k.BzImage)
	res, err := vm.Run(context.Background(), vm.Config{
		Kernel:    k.BzImage,
		Initramfs: img,
		Append:    "liveupdate=on luotest.scenario=" + name,
		Timeout:   5 * time.Minute,
		Log:       t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("scenario %s on kernel %s (%s): %s in %v", name, k.Version, res.Accel, res.Message, res.Elapsed.Round(time.Millisecond))
	if !res.Passed {
		t.Fatalf("scenario %s failed: %s", name, res.Message)
	}
	return res
}

// runKexec boots scenario name in a guest that kexecs once into the same
// kernel, and checks that both kernels ran and the guest passed.
func runKexec(t *testing.T, name string) *vm.Result {
	res := boot(t, name)
	stages := res.Find("STAGE")
	if len(stages) != 2 || stages[0].Text != "1" || stages[1].Text != "2" {
		t.Fatalf("stages seen %v, want 1 then 2 (the kexec did not happen)", stages)
	}
	if res.Boots != 2 {
		t.Fatalf("%d kernels booted, want 2", res.Boots)
	}
	if kx := res.Find("KEXEC"); len(kx) == 1 {
		t.Logf("host-side time from the kexec call to the second kernel's init: %v",
			(stages[1].At - kx[0].At).Round(time.Millisecond))
	}
	return res
}

// TestProof: two memfds in two sessions (64 MiB patterned; small and
// sealed) survive a kexec, every byte and seal verified; an unknown
// session is ENOENT; both sessions finish.
func TestProof(t *testing.T) {
	runKexec(t, "proof")
}

// TestNegative: a session closed before the kexec is gone after it; a
// pipe is refused by PRESERVE_FD with the kernel's errno surfaced by luo;
// a second open of /dev/liveupdate is EBUSY.
func TestNegative(t *testing.T) {
	res := runKexec(t, "negative")
	refused := res.Find("REFUSED")
	if len(refused) != 1 || refused[0].Text == "" {
		t.Fatalf("no REFUSED marker with the kernel's errno: %v", refused)
	}
	t.Logf("PRESERVE_FD of a pipe was refused with %s", refused[0].Text)
}

// TestPrepare: `luoinit prepare` takes two memfds pushed over the handoff
// socket and one taken with pidfd_getfd, preserves them, appends the
// manifest to the next initramfs and kexecs; in the new kernel every fd is
// retrieved by the manifest's tokens and verified.
func TestPrepare(t *testing.T) {
	res := runKexec(t, "prepare")
	if acks := res.Find("WORKLOAD_ACK"); len(acks) != 1 || acks[0].Text != "kv ok" {
		t.Fatalf("the socket workload's ACK: %v, want one \"kv ok\"", acks)
	}
}

// TestPrepareCancel: a --no-reboot prepare cancelled by SIGTERM leaves no
// session and no kexec image; the same session names work again at once.
func TestPrepareCancel(t *testing.T) {
	res := boot(t, "cancel")
	if res.Boots != 1 {
		t.Fatalf("%d kernels booted, want 1 (nothing may kexec)", res.Boots)
	}
}

// TestPrepareRefused: an fd LUO refuses fails prepare before any freeze,
// with workload, fd and errno named; optional, it is dropped and recorded.
func TestPrepareRefused(t *testing.T) {
	res := boot(t, "refused")
	if res.Boots != 1 {
		t.Fatalf("%d kernels booted, want 1", res.Boots)
	}
	acks := res.Find("WORKLOAD_ACK")
	if len(acks) < 1 || !strings.Contains(acks[0].Text, "events") {
		t.Fatalf("the workload was not told which fd failed: %v", acks)
	}
}
