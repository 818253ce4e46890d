package preflight

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// checkMemory: the running kernel can hold the next kernel and initramfs
// for kexec_file_load, they fit in KHO's scratch area (with KHO on,
// kexec_file_load places every segment there: kernel/kexec_file.c), and
// the next kernel has room to start beside the preserved memory (memfds
// are shared memory, so Shmem bounds it).
func (r *Report) checkMemory(o Options) {
	if r.Next == nil {
		return
	}
	var initrdSize int64
	if st, err := os.Stat(o.Initrd); o.Initrd != "" && err == nil {
		initrdSize = st.Size()
	}
	mi, err := readMeminfo(o.path("/proc/meminfo"))
	if err != nil {
		r.add("memory", Warn, "%v: not checked", err)
		return
	}
	load := r.Next.Size + initrdSize
	// The kernel decompresses itself into init_size bytes, and the
	// initramfs is held once packed and once unpacked.
	boot := int64(r.Next.Header.InitSize) + 2*initrdSize
	free := mi["MemTotal"] - mi["Shmem"]
	// The segments in scratch: the kernel's (init_size at least) and the
	// initramfs.
	segments := max(int64(r.Next.Header.InitSize), r.Next.Size) + initrdSize
	initrd := fmt.Sprintf("initramfs %d KiB", initrdSize>>10)
	if initrdSize == 0 {
		initrd = "initramfs size unknown, not counted"
	}
	st := OK
	var why string
	scratch, scratchErr := readScratch(o.path(KHODebugfs + "/scratch_len"))
	switch {
	case load > mi["MemAvailable"]:
		st, why = Fail, ": not enough available to load it"
	case scratchErr == nil && segments > scratch:
		st, why = Fail, ": the kernel and initramfs do not fit in KHO's scratch area (more with kho_scratch= at the running kernel's boot)"
	case boot > free:
		st, why = Fail, ": the next kernel could not start beside the preserved memory"
	}
	inScratch := "KHO scratch unknown (no debugfs)"
	if scratchErr == nil {
		inScratch = fmt.Sprintf("%d MiB in the %d MiB of KHO scratch", mib(segments), mib(scratch))
	}
	r.add("memory", st, "loading needs %d MiB of %d MiB available, %s; starting needs %d MiB of the %d MiB outside shared memory (%s)%s",
		mib(load), mib(mi["MemAvailable"]), inScratch, mib(boot), mib(free), initrd, why)
}

// readScratch sums KHO's scratch areas as debugfs lists them: one
// hexadecimal size per line.
func readScratch(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, f := range strings.Fields(string(b)) {
		n, err := strconv.ParseInt(f, 0, 64)
		if err != nil || n < 0 || sum+n < sum {
			return 0, fmt.Errorf("%s: %q is not a size", path, f)
		}
		sum += n
	}
	if sum == 0 {
		return 0, fmt.Errorf("%s: no scratch area", path)
	}
	return sum, nil
}

func mib(n int64) int64 { return (n + 1<<20 - 1) >> 20 }

// readMeminfo reads the fields of /proc/meminfo, in bytes.
func readMeminfo(path string) (map[string]int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var n int64
		var unit string
		if c, _ := fmt.Sscan(rest, &n, &unit); c >= 1 {
			if unit == "kB" {
				n <<= 10
			}
			m[k] = n
		}
	}
	for _, k := range []string{"MemTotal", "MemAvailable", "Shmem"} {
		if _, ok := m[k]; !ok {
			return nil, fmt.Errorf("%s has no %s", path, k)
		}
	}
	return m, nil
}
