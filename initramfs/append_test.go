package initramfs

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
)

// records reads every archive in a concatenation the way the kernel does:
// archive after archive, skipping zero padding, gunzipping gzip members.
func records(t *testing.T, img []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	for len(img) > 0 {
		if img[0] == 0 {
			img = img[1:]
			continue
		}
		if len(img) > 2 && img[0] == 0x1f && img[1] == 0x8b {
			// A *bytes.Reader is an io.ByteReader, so gzip reads from it
			// exactly what the member holds and no more.
			br := bytes.NewReader(img)
			zr, err := gzip.NewReader(br)
			if err != nil {
				t.Fatal(err)
			}
			zr.Multistream(false)
			raw, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range records(t, raw) {
				out[k] = v
			}
			img = img[len(img)-br.Len():]
			continue
		}
		rr := cpio.Newc.Reader(bytes.NewReader(img))
		var end int64
		for {
			r, err := rr.ReadRecord()
			if err == io.EOF {
				// The reader turns the trailer into EOF; the archive ends
				// after the trailer's name, padded to 4 bytes.
				i := bytes.Index(img[end:], []byte(cpio.Trailer+"\x00"))
				if i < 0 {
					t.Fatalf("no trailer after offset %d", end)
				}
				end += int64(i + len(cpio.Trailer) + 1)
				end += (4 - end%4) % 4
				break
			}
			if err != nil {
				t.Fatalf("reading archive at %d of %d: %v", end, len(img), err)
			}
			end = r.RecPos + int64(r.RecLen)
			b, _ := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
			out[r.Name] = string(b)
		}
		img = img[end:]
	}
	return out
}

func TestAppend(t *testing.T) {
	dir := t.TempDir()
	base := New()
	base.AddFile("init", []byte("base init"), 0o755)
	base.AddFile("etc/keep", []byte("kept"), 0o644)
	var raw bytes.Buffer
	base.WriteTo(&raw)
	raw.WriteString("xyz") // a base whose length is not a multiple of 4

	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw.Bytes()[:raw.Len()-3])
	zw.Close()

	for _, tc := range []struct {
		desc string
		base []byte
	}{
		{"uncompressed, unaligned", raw.Bytes()},
		{"gzip", gz.Bytes()},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			bp := filepath.Join(dir, "base")
			os.WriteFile(bp, tc.base, 0o644)
			add := New()
			add.AddFile("etc/luoinit/manifest.toml", []byte("version = 1\n"), 0o644)
			out := filepath.Join(dir, "out")
			if err := Append(out, bp, add); err != nil {
				t.Fatal(err)
			}
			img, _ := os.ReadFile(out)
			if !bytes.Equal(img[:len(tc.base)], tc.base) {
				t.Fatal("the base image was not copied byte for byte")
			}
			start := len(tc.base) + (4-len(tc.base)%4)%4
			if start%4 != 0 || !bytes.Equal(img[len(tc.base):start], make([]byte, start-len(tc.base))) {
				t.Fatalf("padding after the base is wrong")
			}
			if tc.desc == "gzip" {
				got := records(t, img)
				for name, want := range map[string]string{"init": "base init", "etc/keep": "kept", "etc/luoinit/manifest.toml": "version = 1\n"} {
					if got[name] != want {
						t.Errorf("%s = %q, want %q", name, got[name], want)
					}
				}
			}
		})
	}
}

func TestAppendErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o644)
	for _, tc := range []struct {
		desc, base string
	}{
		{"missing base", filepath.Join(dir, "absent")},
		{"empty base", empty},
	} {
		out := filepath.Join(dir, "out-"+filepath.Base(tc.base))
		if err := Append(out, tc.base, New()); err == nil {
			t.Errorf("%s: no error", tc.desc)
		}
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: output left behind", tc.desc)
		}
	}
}

func TestCheckStatic(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	os.WriteFile(src, []byte("package main\nimport \"os/user\"\nfunc main() { user.Current() }\n"), 0o644)
	build := func(out string, cgo string) string {
		p := filepath.Join(dir, out)
		cmd := exec.Command("go", "build", "-o", p, src)
		cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgo, "GOFLAGS=-mod=mod")
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Skipf("cannot build a test program: %v\n%s", err, b)
		}
		return p
	}
	if err := CheckStatic(build("static", "0")); err != nil {
		t.Errorf("static binary: %v", err)
	}
	if err := CheckStatic(build("dynamic", "1")); !errors.Is(err, ErrNotStatic) {
		t.Errorf("cgo binary: %v, want ErrNotStatic", err)
	}
	if err := CheckStatic(src); err == nil {
		t.Error("a Go source file passed as a static ELF")
	}
}
