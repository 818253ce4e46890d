package preflight

import (
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/pierrec/lz4/v4"
	"github.com/therootcompany/xz"
	"github.com/ulikunitz/xz/lzma"
)

// MaxKernelSize caps the decompressed kernel luoinit will scan: 256 MiB,
// four times a distribution kernel's vmlinux. A payload that claims or
// turns out to be larger is refused, so a hostile image cannot make
// luoinit decompress a gigabyte; the decompressed bytes are streamed
// through the scanner, never held whole.
const MaxKernelSize = 256 << 20

// ErrUnsupportedCompression is wrapped by the error of a payload whose
// compression luoinit cannot decompress.
var ErrUnsupportedCompression = errors.New("unsupported kernel compression")

// ErrTooLarge is wrapped when the decompressed kernel exceeds MaxKernelSize.
var ErrTooLarge = errors.New("decompressed kernel larger than the cap")

// A compression the kernel's build may use for the bzImage payload
// (arch/x86/boot/compressed/Makefile), known by its magic.
type compression struct {
	name  string
	magic []byte
	// open returns a reader of the decompressed bytes of r, which the
	// payload says are size bytes (its trailer; gzip's own); nil:
	// unsupported.
	open func(r *io.SectionReader, size uint32) (io.Reader, error)
	// sized: the payload ends with the decompressed size as a little-endian
	// u32 appended by the build (every format but gzip, whose own
	// trailer ends with it).
	sized bool
}

var compressions = []compression{
	{name: "gzip", magic: []byte{0x1f, 0x8b}, open: func(r *io.SectionReader, _ uint32) (io.Reader, error) {
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		z.Multistream(false)
		return z, nil
	}},
	{name: "xz", magic: []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}, sized: true, open: func(r *io.SectionReader, _ uint32) (io.Reader, error) {
		// The x86 kernel is compressed with the x86 BCJ filter, which
		// this decoder (a port of XZ Embedded) supports, and a 128 MiB
		// dictionary (scripts/xz_wrap.sh). The decoder allocates the
		// dictionary whole, but only the pages the output reaches are
		// ever touched: resident memory follows the kernel's size.
		return xz.NewReader(r, 128<<20)
	}},
	{name: "zstd", magic: []byte{0x28, 0xb5, 0x2f, 0xfd}, sized: true, open: func(r *io.SectionReader, size uint32) (io.Reader, error) {
		return zstdReader(r, uint64(size))
	}},
	{name: "lz4", magic: []byte{0x02, 0x21, 0x4c, 0x18}, sized: true, open: func(r *io.SectionReader, _ uint32) (io.Reader, error) {
		z := lz4.NewReader(r)
		if err := z.Apply(lz4.ConcurrencyOption(1)); err != nil {
			return nil, err
		}
		return z, nil
	}},
	{name: "bzip2", magic: []byte("BZh"), sized: true, open: func(r *io.SectionReader, _ uint32) (io.Reader, error) { return bzip2.NewReader(r), nil }},
	{name: "lzma", magic: []byte{0x5d, 0x00, 0x00}, sized: true, open: func(r *io.SectionReader, _ uint32) (io.Reader, error) {
		// lzma -9 uses a 64 MiB dictionary; the cap refuses a header that
		// asks for gigabytes before anything is allocated.
		return lzma.ReaderConfig{DictCap: 128 << 20}.NewReader(r)
	}},
	// No decoder among luoinit's dependencies; named so the error can say so.
	{name: "lzo", magic: []byte{0x89, 'L', 'Z', 'O'}, sized: true},
}

// detect names the payload's compression from its first bytes.
func detect(head []byte) (*compression, error) {
	for i := range compressions {
		if bytes.HasPrefix(head, compressions[i].magic) {
			return &compressions[i], nil
		}
	}
	return nil, fmt.Errorf("%w: payload starts % x, which is none of gzip, xz, zstd, lz4, bzip2, lzma, lzo", ErrUnsupportedCompression, head[:min(len(head), 6)])
}

// Decompress streams the decompressed kernel of the bzImage with header
// h to w and returns its compression's name. It refuses a payload whose
// recorded size, or whose actual output, exceeds MaxKernelSize.
func Decompress(r io.ReaderAt, h *Header, w io.Writer) (string, error) {
	start, n := h.PayloadStart(), int64(h.PayloadLength)
	head := make([]byte, 8)
	if _, err := r.ReadAt(head[:min(8, n)], start); err != nil {
		return "", fmt.Errorf("reading the payload at %d: %w", start, err)
	}
	c, err := detect(head[:min(8, n)])
	if err != nil {
		return "", err
	}
	if c.open == nil {
		return c.name, fmt.Errorf("%w: the payload is %s-compressed; luoinit decompresses gzip, xz, zstd, lz4, bzip2 and lzma", ErrUnsupportedCompression, c.name)
	}
	if n < 4 {
		return c.name, fmt.Errorf("%s payload of %d bytes: too short", c.name, n)
	}
	var tail [4]byte
	if _, err := r.ReadAt(tail[:], start+n-4); err != nil {
		return c.name, fmt.Errorf("reading the payload's size: %w", err)
	}
	size := binary.LittleEndian.Uint32(tail[:])
	if size > MaxKernelSize {
		return c.name, fmt.Errorf("%w: the %s payload says it holds %d MiB, more than %d MiB", ErrTooLarge, c.name, size>>20, MaxKernelSize>>20)
	}
	if c.sized {
		n -= 4
	}
	dec, err := c.open(io.NewSectionReader(r, start, n), size)
	if err != nil {
		return c.name, fmt.Errorf("%s payload: %w", c.name, err)
	}
	if cl, ok := dec.(io.Closer); ok {
		defer cl.Close()
	}
	got, err := io.Copy(w, io.LimitReader(dec, MaxKernelSize+1))
	if err != nil {
		return c.name, fmt.Errorf("decompressing the %s payload after %d bytes: %w", c.name, got, err)
	}
	if got > MaxKernelSize {
		return c.name, fmt.Errorf("%w: the %s payload decompresses to more than %d MiB", ErrTooLarge, c.name, MaxKernelSize>>20)
	}
	return c.name, nil
}
