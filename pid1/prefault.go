package pid1

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Prefault maps every page of this program's read-only segments (code
// and constants) in one madvise(MADV_POPULATE_READ) call each, instead of
// one page fault per page on first use. A PID 1 restoring a live update
// runs a great deal of code once, right after the kexec, and each fault
// is a trap into the kernel: under emulation, a costly one. The pages are
// in memory already (the initramfs); this only fills the page tables.
// It returns the bytes populated; a kernel older than 5.14 says EINVAL,
// which costs nothing but the call.
func Prefault() (int, error) {
	auxv, err := unix.Auxv()
	if err != nil {
		return 0, fmt.Errorf("reading the auxiliary vector: %w", err)
	}
	// <elf.h>'s AT_PHDR and AT_PHNUM (x/sys does not name them).
	const atPhdr, atPhnum = 3, 5
	var phdr, phnum uintptr
	for _, kv := range auxv {
		switch kv[0] {
		case atPhdr:
			phdr = kv[1]
		case atPhnum:
			phnum = kv[1]
		}
	}
	if phdr == 0 || phnum == 0 || phnum > 64 {
		return 0, fmt.Errorf("no program headers in the auxiliary vector")
	}
	// Elf64_Phdr: type, flags (u32); offset, vaddr, paddr, filesz, memsz,
	// align (u64). A static non-PIE binary: vaddr is the address.
	type phdr64 struct {
		typ, flags                                  uint32
		offset, vaddr, paddr, filesz, memsz, palign uint64
	}
	const ptLoad, pfW = 1, 2
	// The auxiliary vector gives the headers' address as a number; they
	// are mapped for as long as the program runs.
	hdrs := unsafe.Slice((*phdr64)(unsafe.Add(nil, phdr)), phnum)
	page := uint64(unix.Getpagesize())
	total := 0
	for _, h := range hdrs {
		if h.typ != ptLoad || h.flags&pfW != 0 || h.memsz == 0 {
			continue
		}
		start := h.vaddr &^ (page - 1)
		end := (h.vaddr + h.filesz + page - 1) &^ (page - 1)
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_POPULATE_READ); e != 0 {
			return total, fmt.Errorf("madvise(%#x, %d, MADV_POPULATE_READ): %w", start, end-start, e)
		}
		total += int(end - start)
	}
	return total, nil
}
