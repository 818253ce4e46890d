//go:build floor && kernelimage

package main

import (
	"os"

	"github.com/luoinit/luoinit/preflight"
)

// init links preflight's kernel-image reader (its decompressors: gzip,
// bzip2, lz4, xz, lzma, zstd), for the size of the floor binary with it.
// It calls it only when given a tenth argument, which never happens.
func init() {
	if len(os.Args) < 10 {
		return
	}
	preflight.Decompress(os.Stdin, nil, os.Stdout)
}
