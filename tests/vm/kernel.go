package vm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Kernel is a built VM-test kernel as tests/kernel/build.sh leaves it:
// a directory holding bzImage, version, config and liveupdate.h.
type Kernel struct {
	BzImage string
	Version string // kernel release, e.g. "7.3.4"
	Dir     string
}

// ErrNoKernel is returned by FindKernel when $LUOINIT_KERNEL is not set.
var ErrNoKernel = errors.New("LUOINIT_KERNEL is not set: run the VM tests through `make vmtest` (or `make test`), which builds the kernel")

// FindKernel returns the kernel named by $LUOINIT_KERNEL (the path of a
// bzImage built by tests/kernel/build.sh).
func FindKernel() (*Kernel, error) {
	p := os.Getenv("LUOINIT_KERNEL")
	if p == "" {
		return nil, ErrNoKernel
	}
	if _, err := os.Stat(p); err != nil {
		return nil, fmt.Errorf("LUOINIT_KERNEL: %w", err)
	}
	k := &Kernel{BzImage: p, Dir: filepath.Dir(p)}
	if b, err := os.ReadFile(filepath.Join(k.Dir, "version")); err == nil {
		k.Version = strings.TrimSpace(string(b))
	} else {
		k.Version = "unknown"
	}
	return k, nil
}

// Required reports whether the VM tests must run: `make test` sets
// LUOINIT_VMTEST=required so that a missing kernel fails instead of
// skipping.
func Required() bool { return os.Getenv("LUOINIT_VMTEST") == "required" }
