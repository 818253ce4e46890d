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

// The environment variables that name the VM-test kernels (bzImage paths
// printed by tests/kernel/build.sh); `make vmtest` sets them all.
const (
	// EnvKernel: the default kernel, the newest Debian offers.
	EnvKernel = "LUOINIT_KERNEL"
	// EnvKernelPrev: the newest of the series before the default's, for
	// live updates across versions.
	EnvKernelPrev = "LUOINIT_KERNEL_PREV"
	// EnvKernelABI: the default kernel with its LUO ABI string changed
	// (build.sh --luo-abi), which cannot read the default's state.
	EnvKernelABI = "LUOINIT_KERNEL_ABI"
	// EnvKernelFaults: the default kernel with tests/kernel/luo-faults.patch,
	// whose command line can make RETRIEVE_FD, FINISH and the
	// deserialisation of the incoming sessions fail (build.sh --luo-faults).
	EnvKernelFaults = "LUOINIT_KERNEL_FAULTS"
)

// FindKernel returns the kernel named by $LUOINIT_KERNEL (the path of a
// bzImage built by tests/kernel/build.sh).
func FindKernel() (*Kernel, error) { return FindKernelEnv(EnvKernel) }

// FindKernelEnv returns the kernel named by the environment variable env;
// an error wrapping ErrNoKernel if it is unset.
func FindKernelEnv(env string) (*Kernel, error) {
	p := os.Getenv(env)
	if p == "" {
		if env == EnvKernel {
			return nil, ErrNoKernel
		}
		return nil, fmt.Errorf("%w (%s is not set)", ErrNoKernel, env)
	}
	if _, err := os.Stat(p); err != nil {
		return nil, fmt.Errorf("%s: %w", env, err)
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
