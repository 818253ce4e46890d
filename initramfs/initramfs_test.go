package initramfs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/cpio"
)

func readBack(t *testing.T, img []byte) []cpio.Record {
	t.Helper()
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(img)))
	if err != nil {
		t.Fatalf("reading the archive back: %v", err)
	}
	return recs
}

func content(t *testing.T, r cpio.Record) []byte {
	t.Helper()
	b, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func build(t *testing.T, src string) []byte {
	t.Helper()
	a := New()
	if err := a.AddFileFrom("init", src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := a.AddFile("etc/luoinit/manifest.toml", []byte("version = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := a.AddSymlink("bin/sh", "/init"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := a.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WriteTo returned %d, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

func TestReproducible(t *testing.T) {
	src := filepath.Join(t.TempDir(), "init")
	if err := os.WriteFile(src, []byte("#!/bin/true\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	first := build(t, src)
	// Times of the source must not leak into the image.
	later := time.Now().Add(48 * time.Hour)
	if err := os.Chtimes(src, later, later); err != nil {
		t.Fatal(err)
	}
	second := build(t, src)
	if !bytes.Equal(first, second) {
		t.Fatalf("two builds of the same entries differ (%d vs %d bytes)", len(first), len(second))
	}
}

func TestContents(t *testing.T) {
	src := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(src, []byte("program bytes"), 0o700); err != nil {
		t.Fatal(err)
	}
	recs := readBack(t, build(t, src))

	var names []string
	byName := map[string]cpio.Record{}
	for _, r := range recs {
		names = append(names, r.Name)
		byName[r.Name] = r
		if r.MTime != 0 || r.UID != 0 || r.GID != 0 {
			t.Errorf("%s: mtime %d uid %d gid %d, want all 0", r.Name, r.MTime, r.UID, r.GID)
		}
	}
	for i := 1; i < len(names); i++ {
		if names[i-1] >= names[i] {
			t.Errorf("entries not sorted: %q before %q", names[i-1], names[i])
		}
	}
	for _, tc := range []struct {
		name string
		mode uint64
		data string
	}{
		{"init", cpio.S_IFREG | 0o755, "program bytes"},
		{"etc", cpio.S_IFDIR | 0o755, ""},
		{"etc/luoinit", cpio.S_IFDIR | 0o755, ""},
		{"etc/luoinit/manifest.toml", cpio.S_IFREG | 0o644, "version = 1\n"},
		{"bin/sh", cpio.S_IFLNK | 0o777, "/init"},
		{"dev/console", cpio.S_IFCHR | 0o600, ""},
		{"tmp", cpio.S_IFDIR | 0o1777, ""},
		{"proc", cpio.S_IFDIR | 0o755, ""},
	} {
		r, ok := byName[tc.name]
		if !ok {
			t.Errorf("%s missing from the archive (have %v)", tc.name, names)
			continue
		}
		if r.Mode != tc.mode {
			t.Errorf("%s: mode %o, want %o", tc.name, r.Mode, tc.mode)
		}
		if got := string(content(t, r)); got != tc.data {
			t.Errorf("%s: content %q, want %q", tc.name, got, tc.data)
		}
	}
	if c := byName["dev/console"]; c.Rmajor != 5 || c.Rminor != 1 {
		t.Errorf("dev/console is %d,%d, want 5,1", c.Rmajor, c.Rminor)
	}
}

func TestAddErrors(t *testing.T) {
	for _, tc := range []struct {
		desc string
		do   func(a *Archive) error
		is   error
	}{
		{"same file twice", func(a *Archive) error {
			a.AddFile("x", nil, 0o644)
			return a.AddFile("x", []byte("y"), 0o644)
		}, ErrExists},
		{"file over a directory", func(a *Archive) error { return a.AddFile("dev", nil, 0o644) }, ErrExists},
		{"file below a file", func(a *Archive) error {
			a.AddFile("f", nil, 0o644)
			return a.AddFile("f/g", nil, 0o644)
		}, nil},
		{"root", func(a *Archive) error { return a.AddFile("/", nil, 0o644) }, nil},
		{"missing source", func(a *Archive) error {
			return a.AddFileFrom("x", filepath.Join(t.TempDir(), "absent"), 0)
		}, os.ErrNotExist},
		{"source is a directory", func(a *Archive) error { return a.AddFileFrom("x", t.TempDir(), 0) }, nil},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err := tc.do(New())
			if err == nil {
				t.Fatal("no error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("error %v, want %v", err, tc.is)
			}
		})
	}
}

func TestPathsStayInside(t *testing.T) {
	a := New()
	for _, p := range []string{"../../etc/passwd", "/abs/file", "a/./b/../c"} {
		if err := a.AddFile(p, nil, 0o644); err != nil {
			t.Fatalf("AddFile(%q): %v", p, err)
		}
	}
	want := map[string]bool{"etc/passwd": true, "abs/file": true, "a/c": true}
	for _, p := range a.Paths() {
		delete(want, p)
		if p == "" || p[0] == '/' || p == ".." || len(p) > 2 && p[:3] == "../" {
			t.Errorf("path %q escapes the archive root", p)
		}
	}
	if len(want) != 0 {
		t.Errorf("missing cleaned paths %v in %v", want, a.Paths())
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "initramfs.cpio")
	a := New()
	if err := a.AddFile("hello", []byte("world"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := a.WriteFile(out); err != nil {
		t.Fatal(err)
	}
	// A source that vanished makes the write fail and must leave neither
	// a partial output nor a temporary file behind.
	src := filepath.Join(dir, "gone")
	os.WriteFile(src, []byte("x"), 0o644)
	b := New()
	b.AddFileFrom("gone", src, 0)
	os.Remove(src)
	if err := b.WriteFile(filepath.Join(dir, "second.cpio")); err == nil {
		t.Fatal("writing with a vanished source succeeded")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "initramfs.cpio" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("directory holds %v, want only initramfs.cpio", names)
	}
	recs := readBack(t, mustRead(t, out))
	found := false
	for _, r := range recs {
		if r.Name == "hello" && string(content(t, r)) == "world" {
			found = true
		}
	}
	if !found {
		t.Fatal("hello not in the written file")
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
