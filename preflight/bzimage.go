package preflight

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The x86 boot protocol's setup header (Documentation/arch/x86/boot.rst,
// arch/x86/include/uapi/asm/bootparam.h): offsets into the image file.
const (
	offSetupSects    = 0x1f1
	offBootFlag      = 0x1fe
	offHeaderMagic   = 0x202
	offVersion       = 0x206
	offKernelVersion = 0x20e
	offLoadFlags     = 0x211
	offXLoadFlags    = 0x236
	offPayloadOffset = 0x248
	offPayloadLength = 0x24c
	offInitSize      = 0x260
	headerEnd        = 0x264

	loadedHigh            = 1 << 0 // loadflags: protected-mode code at 0x100000
	xlfKernel64           = 1 << 0 // xloadflags: has the 64-bit entry point
	xlfCanBeLoadedAbove4G = 1 << 1

	// kexec_file_load's x86-64 loader (bzImage64_probe) wants boot
	// protocol 2.12 or later.
	minProtocol = 0x020c
)

// ErrNotBzImage is wrapped by every error of a file that is not an x86
// bzImage kexec_file_load could take.
var ErrNotBzImage = errors.New("not a bzImage kexec_file_load can load on x86-64")

// Header is what luoinit reads from a bzImage's setup header.
type Header struct {
	Protocol      uint16 // boot protocol version, e.g. 0x020f
	Version       string // the kernel's version string, e.g. "7.3.4 (user@host) #1 SMP ..."
	PayloadOffset uint32 // from the protected-mode code's start, as in the header
	PayloadLength uint32
	InitSize      uint32 // linear memory the kernel needs while it starts
	SetupSize     int64  // bytes before the protected-mode code: (setup_sects+1)*512
}

// Release is the first word of the version string: what `uname -r`
// prints once this kernel runs.
func (h *Header) Release() string {
	f, _, _ := bytes.Cut([]byte(h.Version), []byte(" "))
	return string(f)
}

// PayloadStart is the payload's offset in the file.
func (h *Header) PayloadStart() int64 { return h.SetupSize + int64(h.PayloadOffset) }

// ParseHeader reads the setup header of an image of size bytes and checks
// it the way kexec_file_load's x86-64 bzImage loader does. Only the header
// and the version string are read.
func ParseHeader(r io.ReaderAt, size int64) (*Header, error) {
	if size < 2*512 {
		return nil, fmt.Errorf("%w: %d bytes, shorter than two sectors", ErrNotBzImage, size)
	}
	var b [headerEnd]byte
	if _, err := r.ReadAt(b[:], 0); err != nil {
		return nil, fmt.Errorf("reading the setup header: %w", err)
	}
	le := binary.LittleEndian
	switch {
	case string(b[offHeaderMagic:offHeaderMagic+4]) != "HdrS":
		return nil, fmt.Errorf("%w: no \"HdrS\" at 0x%x", ErrNotBzImage, offHeaderMagic)
	case le.Uint16(b[offBootFlag:]) != 0xaa55:
		return nil, fmt.Errorf("%w: no boot sector signature 0xaa55", ErrNotBzImage)
	}
	h := &Header{
		Protocol:      le.Uint16(b[offVersion:]),
		PayloadOffset: le.Uint32(b[offPayloadOffset:]),
		PayloadLength: le.Uint32(b[offPayloadLength:]),
		InitSize:      le.Uint32(b[offInitSize:]),
	}
	sects := int64(b[offSetupSects])
	if sects == 0 {
		sects = 4 // the boot protocol's rule for old images
	}
	h.SetupSize = (sects + 1) * 512
	xl := le.Uint16(b[offXLoadFlags:])
	switch {
	case h.Protocol < minProtocol:
		return nil, fmt.Errorf("%w: boot protocol %d.%02d, kexec_file_load needs 2.12 or later", ErrNotBzImage, h.Protocol>>8, h.Protocol&0xff)
	case b[offLoadFlags]&loadedHigh == 0:
		return nil, fmt.Errorf("%w: a zImage (loadflags LOADED_HIGH not set)", ErrNotBzImage)
	case xl&xlfKernel64 == 0:
		return nil, fmt.Errorf("%w: no 64-bit entry point (xloadflags XLF_KERNEL_64 not set)", ErrNotBzImage)
	case xl&xlfCanBeLoadedAbove4G == 0:
		return nil, fmt.Errorf("%w: xloadflags XLF_CAN_BE_LOADED_ABOVE_4G not set", ErrNotBzImage)
	case h.SetupSize >= size:
		return nil, fmt.Errorf("%w: %d setup bytes but the file has %d", ErrNotBzImage, h.SetupSize, size)
	case h.PayloadLength == 0 || h.PayloadStart()+int64(h.PayloadLength) > size:
		return nil, fmt.Errorf("%w: payload of %d bytes at %d does not lie in the %d-byte file", ErrNotBzImage, h.PayloadLength, h.PayloadStart(), size)
	}
	if kv := le.Uint16(b[offKernelVersion:]); kv != 0 {
		h.Version = readCString(r, int64(kv)+0x200, size, 256)
	}
	return h, nil
}

// readCString reads a NUL-terminated string of at most max bytes at off;
// "" if there is none.
func readCString(r io.ReaderAt, off, size int64, max int) string {
	if off >= size {
		return ""
	}
	b := make([]byte, min(int64(max), size-off))
	n, _ := r.ReadAt(b, off)
	b = b[:n]
	end := bytes.IndexByte(b, 0)
	if end < 0 {
		return ""
	}
	for _, c := range b[:end] {
		if c < 0x20 || c > 0x7e {
			return ""
		}
	}
	return string(b[:end])
}
