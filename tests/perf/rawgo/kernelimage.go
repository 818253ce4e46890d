//go:build floor && kernelimage

package main

import (
	"compress/bzip2"
	"compress/gzip"
	"debug/elf"
	"io"
	"os"

	"github.com/pierrec/lz4/v4"
	"github.com/therootcompany/xz"
	"github.com/ulikunitz/xz/lzma"
)

// kernelImage links the decompressors luoinit reads a kernel image with
// (preflight: gzip, bzip2, lz4, xz, lzma, zstd through debug/elf), for
// the size of the floor binary with them. It calls them only when given a
// tenth argument, which never happens.
func init() {
	if len(os.Args) < 10 {
		return
	}
	g, _ := gzip.NewReader(os.Stdin)
	io.Copy(os.Stdout, g)
	io.Copy(os.Stdout, bzip2.NewReader(os.Stdin))
	io.Copy(os.Stdout, lz4.NewReader(os.Stdin))
	x, _ := xz.NewReader(os.Stdin, 0)
	io.Copy(os.Stdout, x)
	l, _ := lzma.NewReader(os.Stdin)
	io.Copy(os.Stdout, l)
	f, _ := elf.NewFile(os.Stdin)
	s := f.Section(".x")
	io.Copy(os.Stdout, s.Open())
}
