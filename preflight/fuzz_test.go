package preflight

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzReadImage: any file is refused or read without a panic, and what
// is read is bounded (MaxKernelSize caps the decompressed bytes).
func FuzzReadImage(f *testing.F) {
	for _, kind := range []string{"gzip", "xz", "zstd", "lz4", "bzip2", "lzma", "lzo"} {
		f.Add(bzImage(goodHeader(), compress(f, kind, fakeKernel("luo-v5", true))))
	}
	f.Add(bzImage(goodHeader(), nil))
	f.Add([]byte("HdrS"))
	f.Fuzz(func(t *testing.T, data []byte) {
		im, err := readImage(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		for prefix, v := range im.Compat {
			if len(v) == 0 || len(v) > maxPerPrefix {
				t.Fatalf("%s: %d versions kept", prefix, len(v))
			}
			for _, c := range v {
				if !compatRE().MatchString(c) || c[:len(prefix)] != prefix {
					t.Fatalf("%q kept under %q", c, prefix)
				}
			}
		}
		_ = im.Compatibles()
	})
}

// FuzzScanner: the scanner finds the same whatever the chunking.
func FuzzScanner(f *testing.F) {
	f.Add(fakeKernel("luo-v5", true), uint8(1))
	f.Add([]byte("\x00luo-v5\x00IKCFG_ST\x1f\x8bIKCFG_ED\x00"), uint8(3))
	f.Add([]byte("IKCFG_STIKCFG_ST\x00IKCFG_ED"), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		whole := newScanner()
		whole.Write(data)
		step := int(chunk)%64 + 1
		s := newScanner()
		for i := 0; i < len(data); i += step {
			s.Write(data[i:min(i+step, len(data))])
		}
		if !reflect.DeepEqual(s.found, whole.found) {
			t.Fatalf("chunks of %d found %v, whole %v", step, s.found, whole.found)
		}
		if !bytes.Equal(s.config(), whole.config()) {
			t.Fatalf("chunks of %d: config differs", step)
		}
		if len(s.ikcfg) > maxIKConfig {
			t.Fatalf("config capture %d bytes, cap %d", len(s.ikcfg), maxIKConfig)
		}
	})
}
