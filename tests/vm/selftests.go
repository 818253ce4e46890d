package vm

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// LUOSelftests are the kernel's own live-update selftests
// (tools/testing/selftests/liveupdate) that TestOwnedSessions runs,
// unmodified, as workloads of luoinit.
var LUOSelftests = []string{"luo_kexec_simple", "luo_multi_session", "luo_stress_files"}

// Source returns the kernel source tree k was built from: build.sh keeps
// it at CACHE/src/<version> and the kernel at CACHE/kernel/<version>-<hash>.
func (k *Kernel) Source() (string, error) {
	base := filepath.Base(k.Dir)
	i := strings.LastIndexByte(base, '-')
	if i <= 0 {
		return "", fmt.Errorf("kernel directory %s is not <source>-<hash>", k.Dir)
	}
	src := filepath.Join(filepath.Dir(filepath.Dir(k.Dir)), "src", base[:i])
	if _, err := os.Stat(filepath.Join(src, "tools", "testing", "selftests", "liveupdate")); err != nil {
		return "", fmt.Errorf("the source of kernel %s: %w", k.Dir, err)
	}
	return src, nil
}

// BuildLUOSelftests compiles LUOSelftests statically (gcc -static) from
// k's source, against its lib/lu_utils.c and the uapi liveupdate.h of the
// same tree, into dir. It returns the binaries by name.
func BuildLUOSelftests(k *Kernel, dir string) (map[string]string, error) {
	src, err := k.Source()
	if err != nil {
		return nil, err
	}
	st := filepath.Join(src, "tools", "testing", "selftests", "liveupdate")
	inc := filepath.Join(dir, "uapi")
	if err := os.MkdirAll(filepath.Join(inc, "linux"), 0o755); err != nil {
		return nil, err
	}
	// Only liveupdate.h from the tree: the rest of include/uapi would
	// shadow the C library's kernel headers.
	h, err := os.ReadFile(filepath.Join(src, "include", "uapi", "linux", "liveupdate.h"))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(inc, "linux", "liveupdate.h"), h, 0o644); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, t := range LUOSelftests {
		bin := filepath.Join(dir, t)
		cmd := exec.Command("gcc", "-static", "-O2", "-Wall", "-Wno-unused-function",
			"-I", inc, "-I", filepath.Join(st, "lib", "include"),
			"-o", bin, filepath.Join(st, t+".c"), filepath.Join(st, "lib", "lu_utils.c"))
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("building selftest %s: %v\n%s", t, err, b)
		}
		out[t] = bin
	}
	return out, nil
}
