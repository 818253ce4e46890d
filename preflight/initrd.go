package preflight

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// initrdFormat is one format the kernel's initramfs unpacker takes
// (init/initramfs.c, lib/decompress.c): its magic, and for a compression
// a string that only the kernel's decompressor for it holds, so that its
// presence in the decompressed image says the decompressor is built in
// (CONFIG_RD_*).
type initrdFormat struct {
	name   string
	magic  []byte
	marker string // "" for cpio, which every kernel reads
}

var initrdFormats = []initrdFormat{
	{"cpio (newc)", []byte("070701"), ""},
	{"cpio (newc with checksums)", []byte("070702"), ""},
	{"gzip", []byte{0x1f, 0x8b}, "Out of memory while allocating z_stream"},
	{"gzip", []byte{0x1f, 0x9e}, "Out of memory while allocating z_stream"},
	{"bzip2", []byte{0x42, 0x5a}, "Data integrity error when decompressing."},
	{"lzma", []byte{0x5d, 0x00}, "LZMA data is corrupt"},
	{"xz", []byte{0xfd, 0x37}, "XZ decompressor ran out of memory"},
	// lzo's and lz4's messages share a start: lz4's ends at the comma.
	{"lzo", []byte{0x89, 0x4c}, "Both input pointer and fill function provided, don't know what to do"},
	{"lz4", []byte{0x02, 0x21}, "Both input pointer and fill function provided,\x00"},
	{"zstd", []byte{0x28, 0xb5}, "ZSTD decompressor ran out of memory"},
}

// markerScanner records which initrdFormats markers a stream holds; it
// keeps the tail of each write so that a marker split across two writes
// is found.
type markerScanner struct {
	found map[string]bool
	tail  []byte
}

func newMarkerScanner() *markerScanner { return &markerScanner{found: map[string]bool{}} }

func (m *markerScanner) Write(p []byte) (int, error) {
	buf := append(m.tail, p...)
	for _, f := range initrdFormats {
		if f.marker != "" && !m.found[f.marker] && bytes.Contains(buf, []byte(f.marker)) {
			m.found[f.marker] = true
		}
	}
	keep := min(len(buf), maxMarker-1)
	m.tail = append(m.tail[:0:0], buf[len(buf)-keep:]...)
	return len(p), nil
}

var maxMarker = func() int {
	n := 0
	for _, f := range initrdFormats {
		n = max(n, len(f.marker))
	}
	return n
}()

// checkInitrd: the next initramfs is one the next kernel can unpack: a
// newc cpio archive, or one compressed with a decompressor the next
// kernel has. Leading NUL padding is skipped, as the kernel does.
func (r *Report) checkInitrd(o Options) {
	if o.Initrd == "" {
		return
	}
	name, err := initrdKind(o.Initrd)
	if err != nil {
		r.add("initramfs", Fail, "%v", err)
		return
	}
	f := formatByName(name)
	switch {
	case f.marker == "":
		r.add("initramfs", OK, "%s: %s, read by every kernel", o.Initrd, name)
	case r.Next == nil:
		r.add("initramfs", Warn, "%s: %s compressed; whether the next kernel can read it is unknown (its image was not read)", o.Initrd, name)
	case !r.Next.markers[f.marker]:
		r.add("initramfs", Fail, "%s: %s compressed, but the next kernel has no %s decompressor (CONFIG_RD_%s): it would boot without its initramfs", o.Initrd, name, name, upper(name))
	default:
		r.add("initramfs", OK, "%s: %s compressed, and the next kernel has the %s decompressor", o.Initrd, name, name)
	}
}

// initrdKind names the format path starts with, or says why it is not
// an initramfs.
func initrdKind(path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	// The kernel skips NUL padding before an archive (in 4-byte steps);
	// a file of NULs alone is no initramfs.
	head := make([]byte, 4096)
	var off int64
	for {
		n, err := fh.ReadAt(head, off)
		if n == 0 {
			if err == io.EOF || err == nil {
				return "", fmt.Errorf("%s: not an initramfs: empty, or NUL bytes only", path)
			}
			return "", fmt.Errorf("%s: %w", path, err)
		}
		i := 0
		for i < n && head[i] == 0 {
			i++
		}
		if i < n {
			if n-i < 6 && err == nil {
				off += int64(i)
				continue
			}
			b := head[i:n]
			for _, f := range initrdFormats {
				if bytes.HasPrefix(b, f.magic) {
					return f.name, nil
				}
			}
			return "", fmt.Errorf("%s: not an initramfs: at byte %d it starts with % x, neither a newc cpio archive (070701) nor a compression the kernel reads (gzip, bzip2, lzma, xz, lzo, lz4, zstd)",
				path, off+int64(i), b[:min(len(b), 6)])
		}
		off += int64(n)
	}
}

func formatByName(name string) initrdFormat {
	for _, f := range initrdFormats {
		if f.name == name {
			return f
		}
	}
	return initrdFormat{}
}

func upper(s string) string { return string(bytes.ToUpper([]byte(s))) }
