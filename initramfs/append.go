package initramfs

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/luoinit/luoinit/atomicfile"
)

// Append writes the image at base, byte for byte and whether compressed
// or not, padded with zeros to a 4-byte boundary, followed by a, to out.
// The kernel unpacks concatenated archives in order, so the files of a
// are added to (or replace) those of base; base is never unpacked.
// The write is atomic like WriteFile.
func Append(out, base string, a *Archive) error {
	in, err := os.Open(base)
	if err != nil {
		return fmt.Errorf("initramfs: base image: %w", err)
	}
	defer in.Close()
	return atomicfile.Write(out, 0o644, func(f *os.File) error {
		n, err := io.Copy(f, in)
		if err != nil {
			return fmt.Errorf("appending to %s: %w", base, err)
		}
		if n == 0 {
			return fmt.Errorf("appending to %s: base image is empty", base)
		}
		// An uncompressed archive after the base must start on a 4-byte
		// boundary, or the kernel reports broken padding.
		if pad := (4 - n%4) % 4; pad != 0 {
			if _, err := f.Write(make([]byte, pad)); err != nil {
				return err
			}
		}
		_, err = a.WriteTo(f)
		return err
	})
}

// ErrNotStatic is wrapped when a program meant for an initramfs is
// dynamically linked: it would not run there, where there is no loader.
var ErrNotStatic = errors.New("dynamically linked (build it with CGO_ENABLED=0)")

// CheckStatic returns an error if the ELF file at path asks for a program
// interpreter (a dynamic loader).
func CheckStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("initramfs: %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("initramfs: %s: %w", path, ErrNotStatic)
		}
	}
	return nil
}
