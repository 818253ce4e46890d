package preflight

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
)

// zstdReader decompresses the zstd stream in r with the standard
// library's decoder. That decoder has no exported API of its own: it
// serves debug/elf's compressed sections (ELFCOMPRESS_ZSTD). So the stream
// is presented, without copying it, as the one section of a minimal ELF
// file, and read back through Section.Open. debug/elf is linked already
// (kexec loads ELF kernels); a separate zstd package would add its code
// and, at every start of the program (of PID 1 too), its package inits.
// size is the decompressed size the payload records; it bounds nothing
// (the caller caps the output) but is the section's size.
func zstdReader(r *io.SectionReader, size uint64) (io.Reader, error) {
	const (
		ehsize, shentsize = 64, 64 // Elf64_Ehdr, Elf64_Shdr
		chsize            = 24     // Elf64_Chdr
	)
	le := binary.LittleEndian
	// The ELF header and the compression header, then the stream.
	head := make([]byte, ehsize+chsize)
	copy(head, []byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)})
	le.PutUint16(head[16:], uint16(elf.ET_REL))
	le.PutUint16(head[18:], uint16(elf.EM_X86_64))
	le.PutUint32(head[20:], uint32(elf.EV_CURRENT))
	shoff := uint64(ehsize+chsize) + uint64(r.Size())
	le.PutUint64(head[40:], shoff)  // e_shoff
	le.PutUint16(head[52:], ehsize) // e_ehsize
	le.PutUint16(head[58:], shentsize)
	le.PutUint16(head[60:], 2) // e_shnum: the null section and ours
	le.PutUint16(head[62:], 0) // e_shstrndx: no names
	le.PutUint32(head[ehsize:], uint32(elf.COMPRESS_ZSTD))
	le.PutUint64(head[ehsize+8:], size)
	le.PutUint64(head[ehsize+16:], 1)
	// The section headers: null, then the compressed section.
	tail := make([]byte, 2*shentsize)
	sh := tail[shentsize:]
	le.PutUint32(sh[4:], uint32(elf.SHT_PROGBITS))
	le.PutUint64(sh[8:], uint64(elf.SHF_COMPRESSED))
	le.PutUint64(sh[24:], ehsize)                          // sh_offset
	le.PutUint64(sh[32:], uint64(chsize)+uint64(r.Size())) // sh_size
	le.PutUint64(sh[48:], 1)                               // sh_addralign
	f, err := elf.NewFile(concat{bytes.NewReader(head), r, bytes.NewReader(tail)})
	if err != nil {
		return nil, fmt.Errorf("zstd: wrapping the stream: %w", err)
	}
	if len(f.Sections) != 2 {
		return nil, fmt.Errorf("zstd: wrapping the stream: %d sections", len(f.Sections))
	}
	return f.Sections[1].Open(), nil
}

// sizedReaderAt is a part of concat.
type sizedReaderAt interface {
	io.ReaderAt
	Size() int64
}

// concat reads its parts one after another as one io.ReaderAt.
type concat []sizedReaderAt

func (c concat) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for _, part := range c {
		size := part.Size()
		if off >= size {
			off -= size
			continue
		}
		m, err := part.ReadAt(p[n:min(len(p), n+int(size-off))], off)
		n += m
		if err != nil && err != io.EOF {
			return n, err
		}
		if n == len(p) {
			return n, nil
		}
		off = 0
	}
	return n, io.EOF
}
