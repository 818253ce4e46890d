package preflight

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// The VM scenarios TestCrossVersionUp, TestCrossVersionDown and
// TestPreflightRefusesABI (tests/scenarios) run these checks on real
// kernels; these tests use synthetic images.

const testConfig = "CONFIG_KEXEC_HANDOVER=y\nCONFIG_KEXEC_HANDOVER_ENABLE_DEFAULT=y\nCONFIG_LIVEUPDATE=y\nCONFIG_LIVEUPDATE_MEMFD=y\n# CONFIG_DEBUG_FS is not set\nCONFIG_LOCALVERSION=\"\"\n"

// fakeKernel is a decompressed kernel as far as the scanner cares: code
// bytes, .rodata strings, the memfd handler's inline string after a
// pointer, a string the linker merged into a longer one's tail, and the
// embedded config.
func fakeKernel(luo string, config bool) []byte {
	var b bytes.Buffer
	for i := range 3000 {
		b.WriteByte(byte(i*7 + i>>3)) // "code"
	}
	b.WriteString("\x00Linux version 7.3.4 (x@y) #1\x00kho-v4\x00" + luo + "\x00reserve-mem-v1\x00")
	b.Write([]byte{0x00, 0xe0, 0xd1, 0x41, 0x81, 0xff, 0xff, 0xff, 0xff}) // a pointer
	b.WriteString("memfd-v2\x00\x00\x00\x00")
	b.WriteString("xmemblock-v9\x00")          // inside a word: not a compatible string
	b.WriteString("kho-v4 is the version\x00") // not NUL-terminated right after
	b.WriteString("7.3.4-memblock-v1\x00")     // merged into a longer string's tail
	if config {
		var z bytes.Buffer
		w := gzip.NewWriter(&z)
		w.Write([]byte(testConfig))
		w.Close()
		b.WriteString("\x00\x00IKCFG_ST")
		b.Write(z.Bytes())
		b.WriteString("IKCFG_ED\x00")
	}
	for i := range 2000 {
		b.WriteByte(byte(i * 13))
	}
	return b.Bytes()
}

// compress returns payload compressed as the kernel's build does: the
// decompressed size appended, except for gzip, whose trailer ends with it.
func compress(t testing.TB, kind string, data []byte) []byte {
	t.Helper()
	var z bytes.Buffer
	switch kind {
	case "gzip":
		w := gzip.NewWriter(&z)
		w.Write(data)
		w.Close()
		return z.Bytes()
	case "zstd":
		w, err := zstd.NewWriter(&z)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		w.Close()
	case "lz4":
		w := lz4.NewWriter(&z)
		if err := w.Apply(lz4.LegacyOption(true)); err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		w.Close()
	case "xz", "bzip2", "lzma":
		// Made once by xz --x86, bzip2 and xz --format=lzma as the kernel's
		// build runs them (see TestWriteTestdata) from
		// fakeKernel("luo-v5", true).
		b, err := os.ReadFile(filepath.Join("testdata", "payload."+kind))
		if err != nil {
			t.Fatal(err)
		}
		return b
	case "lzo":
		z.Write([]byte{0x89, 'L', 'Z', 'O', 0})
		z.Write(data[:64])
	default:
		t.Fatalf("unknown compression %s", kind)
	}
	return binary.LittleEndian.AppendUint32(z.Bytes(), uint32(len(data)))
}

// header fields of a synthetic bzImage.
type fakeHeader struct {
	protocol           uint16
	loadflags          byte
	xloadflags         uint16
	magic              string
	bootFlag           uint16
	payloadLenOverride uint32
}

func goodHeader() fakeHeader {
	return fakeHeader{protocol: 0x020f, loadflags: 1, xloadflags: 3, magic: "HdrS", bootFlag: 0xaa55}
}

// bzImage builds an image: two setup sectors, the version string, then
// the payload at offset 0 of the protected-mode code.
func bzImage(h fakeHeader, payload []byte) []byte {
	const setupSects = 1
	img := make([]byte, (setupSects+1)*512)
	le := binary.LittleEndian
	img[offSetupSects] = setupSects
	le.PutUint16(img[offBootFlag:], h.bootFlag)
	copy(img[offHeaderMagic:], h.magic)
	le.PutUint16(img[offVersion:], h.protocol)
	le.PutUint16(img[offKernelVersion:], 0x300-0x200)
	copy(img[0x300:], "7.3.4 (x@y) #1 SMP\x00")
	img[offLoadFlags] = h.loadflags
	le.PutUint16(img[offXLoadFlags:], h.xloadflags)
	le.PutUint32(img[offPayloadOffset:], 0)
	n := uint32(len(payload))
	if h.payloadLenOverride != 0 {
		n = h.payloadLenOverride
	}
	le.PutUint32(img[offPayloadLength:], n)
	le.PutUint32(img[offInitSize:], 10<<20)
	return append(img, payload...)
}

func TestReadImage(t *testing.T) {
	want := map[string][]string{
		"kho-v": {"kho-v4"}, "luo-v": {"luo-v5"}, "memfd-v": {"memfd-v2"},
		"memblock-v": {"memblock-v1"}, "reserve-mem-v": {"reserve-mem-v1"},
	}
	for _, kind := range []string{"gzip", "xz", "zstd", "lz4", "bzip2", "lzma"} {
		t.Run(kind, func(t *testing.T) {
			data := bzImage(goodHeader(), compress(t, kind, fakeKernel("luo-v5", true)))
			im, err := readImage(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			if im.Compression != kind {
				t.Errorf("compression %q, want %q", im.Compression, kind)
			}
			if !reflect.DeepEqual(im.Compat, want) {
				t.Errorf("compatible strings %v, want %v", im.Compat, want)
			}
			if im.Release() != "7.3.4" {
				t.Errorf("release %q, want 7.3.4", im.Release())
			}
			if im.Config["CONFIG_KEXEC_HANDOVER_ENABLE_DEFAULT"] != "y" || im.Config["CONFIG_LOCALVERSION"] != "" || len(im.Config) != 5 {
				t.Errorf("config %v", im.Config)
			}
			if got := im.Compatibles(); strings.Join(got, " ") != "kho-v4 luo-v5 memfd-v2 memblock-v1 reserve-mem-v1" {
				t.Errorf("Compatibles() = %v", got)
			}
		})
	}
}

func TestReadImageRefuses(t *testing.T) {
	payload := compress(t, "gzip", fakeKernel("luo-v5", false))
	mod := func(f func(*fakeHeader)) []byte {
		h := goodHeader()
		f(&h)
		return bzImage(h, payload)
	}
	small := compress(t, "zstd", []byte("x"))
	huge := append(small[:len(small)-4:len(small)-4], 0, 0, 0, 0x20) // claims 512 MiB
	for _, tc := range []struct {
		desc  string
		image []byte
		is    error
		words []string
	}{
		{"short", []byte("MZ"), ErrNotBzImage, []string{"shorter than two sectors"}},
		{"no HdrS", mod(func(h *fakeHeader) { h.magic = "Hdrs" }), ErrNotBzImage, []string{"HdrS"}},
		{"no boot flag", mod(func(h *fakeHeader) { h.bootFlag = 0 }), ErrNotBzImage, []string{"0xaa55"}},
		{"old protocol", mod(func(h *fakeHeader) { h.protocol = 0x020b }), ErrNotBzImage, []string{"2.11", "2.12"}},
		{"zImage", mod(func(h *fakeHeader) { h.loadflags = 0 }), ErrNotBzImage, []string{"LOADED_HIGH"}},
		{"32-bit", mod(func(h *fakeHeader) { h.xloadflags = 2 }), ErrNotBzImage, []string{"XLF_KERNEL_64"}},
		{"below 4G", mod(func(h *fakeHeader) { h.xloadflags = 1 }), ErrNotBzImage, []string{"ABOVE_4G"}},
		{"payload past the end", mod(func(h *fakeHeader) { h.payloadLenOverride = 1 << 30 }), ErrNotBzImage, []string{"does not lie in"}},
		{"lzo", bzImage(goodHeader(), compress(t, "lzo", fakeKernel("luo-v5", false))), ErrUnsupportedCompression, []string{"lzo-compressed", "gzip, xz, zstd, lz4, bzip2 and lzma"}},
		{"lzma dictionary", bzImage(goodHeader(), binary.LittleEndian.AppendUint32([]byte{0x5d, 0, 0, 0, 0x40, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0}, 100)), nil, []string{"lzma payload", "dictionary"}},
		{"unknown compression", bzImage(goodHeader(), []byte("PK\x03\x04not a kernel")), ErrUnsupportedCompression, []string{"50 4b 03 04"}},
		{"claims too much", bzImage(goodHeader(), huge), ErrTooLarge, []string{"512 MiB", "256 MiB"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := readImage(bytes.NewReader(tc.image), int64(len(tc.image)))
			if err == nil || tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("readImage = %v, want %v", err, tc.is)
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// A payload whose trailer lies about its size is stopped at the cap: the
// decompressor's output is counted, not believed.
func TestReadImageBomb(t *testing.T) {
	if testing.Short() {
		t.Skip("decompresses 256 MiB")
	}
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	zero := make([]byte, 1<<20)
	for range MaxKernelSize>>20 + 1 {
		w.Write(zero)
	}
	w.Close()
	payload := z.Bytes()
	binary.LittleEndian.PutUint32(payload[len(payload)-4:], 1<<20) // ISIZE says 1 MiB
	data := bzImage(goodHeader(), payload)
	_, err := readImage(bytes.NewReader(data), int64(len(data)))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("readImage = %v, want ErrTooLarge", err)
	}
}

// The scanner finds the same in any chunking of its input.
func TestScannerChunks(t *testing.T) {
	data := fakeKernel("luo-v5", true)
	whole := newScanner()
	whole.Write(data)
	for _, chunk := range []int{1, 2, 3, 7, 64, 4096} {
		s := newScanner()
		for i := 0; i < len(data); i += chunk {
			s.Write(data[i:min(i+chunk, len(data))])
		}
		if !reflect.DeepEqual(s.found, whole.found) || !bytes.Equal(s.config(), whole.config()) {
			t.Errorf("chunks of %d: %v %q, whole: %v %q", chunk, s.found, s.config(), whole.found, whole.config())
		}
	}
	if string(whole.config()) != testConfig {
		t.Errorf("config %q, want %q", whole.config(), testConfig)
	}
}

func TestScannerCases(t *testing.T) {
	for _, tc := range []struct {
		desc, in string
		want     map[string][]string
	}{
		{"two versions kept", "\x00luo-v5\x00luo-v6\x00luo-v5\x00", map[string][]string{"luo-v": {"luo-v5", "luo-v6"}}},
		{"tail after a dash", "\x007.3.4-luo-v6\x00", map[string][]string{"luo-v": {"luo-v6"}}},
		{"tail inside a word", "\x00fooluo-v6\x00", map[string][]string{}},
		{"no NUL after", "\x00luo-v5\n", map[string][]string{}},
		{"no version", "\x00luo-v\x00", map[string][]string{}},
		{"version too long", "\x00luo-v12345\x00", map[string][]string{}},
		{"run too long", "\x00" + strings.Repeat("a", 70) + "-luo-v5\x00", map[string][]string{}},
		{"unknown name", "\x00foo-v1\x00", map[string][]string{}},
	} {
		s := newScanner()
		s.Write([]byte(tc.in))
		if !reflect.DeepEqual(s.found, tc.want) {
			t.Errorf("%s: found %v, want %v", tc.desc, s.found, tc.want)
		}
	}
}

// TestWriteTestdata makes testdata/payload.{xz,bzip2} with the tools
// the kernel's build uses; run with LUOINIT_WRITE_TESTDATA=1.
func TestWriteTestdata(t *testing.T) {
	if os.Getenv("LUOINIT_WRITE_TESTDATA") == "" {
		t.Skip("set LUOINIT_WRITE_TESTDATA=1 to rewrite testdata")
	}
	data := fakeKernel("luo-v5", true)
	for kind, argv := range map[string][]string{
		"xz":    {"xz", "--check=crc32", "--threads=1", "--x86", "--lzma2=dict=1MiB", "-c"},
		"bzip2": {"bzip2", "-9", "-c"},
		"lzma":  {"xz", "--format=lzma", "-9", "-c"},
	} {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdin = bytes.NewReader(data)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		out = binary.LittleEndian.AppendUint32(out, uint32(len(data)))
		if err := os.WriteFile(filepath.Join("testdata", "payload."+kind), out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
