package qemu

import (
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

//go:embed guest.S
var guestSource []byte

// FirmwareSize is the size of the image BuildFirmware writes: QEMU maps a
// -bios image at the top of 4 GiB and its last 64 KiB below 1 MiB too.
const FirmwareSize = 64 << 10

// Where the guest keeps what it checks, as guest physical addresses (STATE
// and PATTERN in guest.S). On a pc machine with less than 3 GiB of RAM
// they are offsets in its memory backend too: a memfd's, say.
const (
	CountAddr   = 0x1000  // the count of status lines, 32 bits
	PatternAddr = 1 << 20 // the start of the pattern
)

// PatternWord is the 32-bit word the guest fills in at addr.
func PatternWord(addr uint32) uint32 { return addr * 0x9e3779b1 }

// DefaultWait is a busy-wait between two status lines that gives a few
// lines a second under TCG on a current x86-64 host (about 7 on a loaded
// 2-core one); nested inside an emulated VM, where the guest runs 20-100
// times slower, a wait of 1/50 of it gives about the same rate.
const DefaultWait = 25_000_000

// BuildFirmware assembles guest.S into a -bios image in dir and returns its
// path. The guest fills patternMiB MiB of RAM from 1 MiB up (so it needs
// patternMiB+1 MiB of RAM), then prints a status line, checks a MiB of the
// pattern and busy-waits wait iterations, forever. It needs GNU as, ld and
// objcopy (binutils).
func BuildFirmware(dir string, patternMiB int, wait uint32) (string, error) {
	if patternMiB < 1 || patternMiB > 3000 {
		return "", fmt.Errorf("firmware: pattern of %d MiB: want 1 to 3000", patternMiB)
	}
	if wait < 1 {
		return "", fmt.Errorf("firmware: a wait of 0 iterations would loop 2^32 times")
	}
	name := fmt.Sprintf("vmguest-%dmib-%d", patternMiB, wait)
	src := filepath.Join(dir, "guest.S")
	obj := filepath.Join(dir, name+".o")
	elf := filepath.Join(dir, name+".elf")
	bin := filepath.Join(dir, name+".bin")
	if err := os.WriteFile(src, guestSource, 0o644); err != nil {
		return "", fmt.Errorf("firmware: %w", err)
	}
	steps := [][]string{
		{"as", "--32",
			"--defsym", fmt.Sprintf("PATTERN_MIB=%d", patternMiB),
			"--defsym", fmt.Sprintf("WAIT_LOOPS=%d", wait),
			"-o", obj, src},
		// Linked where the image's last 64 KiB appear below 1 MiB.
		{"ld", "-m", "elf_i386", "-Ttext=0xf0000", "-e", "reset", "-o", elf, obj},
		{"objcopy", "-O", "binary", "-j", ".text", elf, bin},
	}
	for _, argv := range steps {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			return "", fmt.Errorf("firmware: %s: %w\n%s", argv, err, out)
		}
	}
	st, err := os.Stat(bin)
	if err != nil {
		return "", fmt.Errorf("firmware: %w", err)
	}
	if st.Size() != FirmwareSize {
		return "", fmt.Errorf("firmware: %s is %d bytes, want %d", bin, st.Size(), FirmwareSize)
	}
	return bin, nil
}
