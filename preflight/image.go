package preflight

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Image is what the preflight learns from a kernel image file.
type Image struct {
	Path        string
	Size        int64
	Header      *Header
	Compression string // of the payload: gzip, xz, zstd, lz4, bzip2, lzma
	// Compat holds, per ABI prefix ("luo-v"), the compatible strings found
	// in the decompressed kernel: one normally, none if the kernel was
	// built without that feature, several if the image is ambiguous.
	Compat map[string][]string
	// Config is the kernel's build config (CONFIG_X -> "y", "m", a value;
	// unset options are absent), nil if the kernel was built without
	// CONFIG_IKCONFIG.
	Config map[string]string
	// markers are the initramfs decompressors' strings found in the
	// decompressed kernel (see checkInitrd).
	markers map[string]bool
}

// Release is the kernel release the image will report, "" if unknown.
func (im *Image) Release() string { return im.Header.Release() }

// ABI returns the image's one compatible string for a, or "" and whether
// it has several.
func (im *Image) ABI(a ABI) (compat string, ambiguous bool) {
	v := im.Compat[a.Prefix]
	switch len(v) {
	case 0:
		return "", false
	case 1:
		return v[0], false
	}
	return "", true
}

// Compatibles returns the image's unambiguous compatible strings in ABIs
// order, for a manifest.
func (im *Image) Compatibles() []string {
	var out []string
	for _, a := range ABIs {
		if c, _ := im.ABI(a); c != "" {
			out = append(out, c)
		}
	}
	return out
}

// ReadImage reads the kernel image at path: its setup header, checked as
// kexec_file_load would, and its decompressed payload, scanned for the
// compatible strings and the in-kernel config. Memory stays bounded
// whatever the file holds (see MaxKernelSize).
func ReadImage(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	im, err := readImage(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	im.Path = path
	return im, nil
}

func readImage(r io.ReaderAt, size int64) (*Image, error) {
	h, err := ParseHeader(r, size)
	if err != nil {
		return nil, err
	}
	im := &Image{Size: size, Header: h}
	sc, ms := newScanner(), newMarkerScanner()
	bw := bufio.NewWriterSize(io.MultiWriter(sc, ms), 256<<10)
	if im.Compression, err = Decompress(r, h, bw); err != nil {
		return im, err
	}
	bw.Flush()
	im.Compat, im.markers = sc.found, ms.found
	for _, v := range im.Compat {
		slices.Sort(v)
	}
	if cfg := sc.config(); cfg != nil {
		im.Config = ParseConfig(cfg)
	}
	return im, nil
}

// ParseConfig reads a kernel .config: CONFIG_X=value lines; "# CONFIG_X
// is not set" and everything else is skipped.
func ParseConfig(b []byte) map[string]string {
	m := map[string]string{}
	for line := range bytes.Lines(b) {
		k, v, ok := strings.Cut(strings.TrimSpace(string(line)), "=")
		if ok && strings.HasPrefix(k, "CONFIG_") {
			m[k] = strings.Trim(v, `"`)
		}
	}
	return m
}
