// Package initramfs builds reproducible initramfs images (newc cpio, as
// the kernel unpacks them) with u-root's pkg/cpio.
//
//	a := initramfs.New()
//	a.AddFileFrom("init", "/path/to/static/luoinit", 0o755)
//	a.AddFile("etc/luoinit/config.toml", data, 0o644)
//	err := a.WriteFile("initramfs.cpio")
//
// The same entries always give the same bytes: entries are written sorted
// by path, every missing parent directory is added, and times, owners and
// inode numbers are fixed. Every image carries /dev/console, which the
// kernel opens for init's stdin, stdout and stderr before /dev is mounted.
package initramfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/luoinit/luoinit/atomicfile"
	"github.com/u-root/u-root/pkg/cpio"
)

// ErrExists is wrapped when a path is added twice with different content.
var ErrExists = errors.New("path already in the archive")

type entry struct {
	info cpio.Info
	data []byte // for files and symlinks held in memory
	src  string // for files read from disk at write time
}

// Archive is a set of entries to be written as one newc cpio archive.
type Archive struct {
	entries map[string]entry
}

// New returns an archive holding the entries every bootable image needs:
// /dev/console (5,1) and the mount points /dev, /proc, /sys, /run, /tmp.
func New() *Archive {
	a := &Archive{entries: map[string]entry{}}
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp"} {
		a.mustAdd(d, entry{info: cpio.Info{Mode: cpio.S_IFDIR | 0o755}})
	}
	a.entries["tmp"] = entry{info: cpio.Info{Mode: cpio.S_IFDIR | 0o1777}}
	a.mustAdd("dev/console", entry{info: cpio.Info{Mode: cpio.S_IFCHR | 0o600, Rmajor: 5, Rminor: 1}})
	return a
}

func (a *Archive) mustAdd(name string, e entry) {
	if err := a.add(name, e); err != nil {
		panic(err)
	}
}

// clean turns dst into the archive's form: relative, slash separated, no
// dot segments. It refuses paths that climb out of the root.
func clean(dst string) (string, error) {
	p := path.Clean("/" + filepath.ToSlash(dst))
	if p == "/" {
		return "", fmt.Errorf("initramfs: %q: not a file path", dst)
	}
	return strings.TrimPrefix(p, "/"), nil
}

func (a *Archive) add(dst string, e entry) error {
	name, err := clean(dst)
	if err != nil {
		return err
	}
	// Every parent must be a directory: add the missing ones, refuse a
	// file in the way.
	for d := path.Dir(name); d != "."; d = path.Dir(d) {
		if p, ok := a.entries[d]; ok {
			if p.info.Mode&cpio.S_IFMT != cpio.S_IFDIR {
				return fmt.Errorf("initramfs: %s: parent %s is not a directory", name, d)
			}
			continue
		}
		a.entries[d] = entry{info: cpio.Info{Mode: cpio.S_IFDIR | 0o755}}
	}
	if old, ok := a.entries[name]; ok {
		isDir := func(e entry) bool { return e.info.Mode&cpio.S_IFMT == cpio.S_IFDIR }
		if isDir(old) && isDir(e) {
			a.entries[name] = e // an explicit directory wins over an implicit one
			return nil
		}
		return fmt.Errorf("initramfs: %s: %w", name, ErrExists)
	}
	a.entries[name] = e
	return nil
}

// AddFile adds a regular file with the given content and permissions.
func (a *Archive) AddFile(dst string, data []byte, perm fs.FileMode) error {
	return a.add(dst, entry{info: cpio.Info{Mode: cpio.S_IFREG | uint64(perm.Perm())}, data: data})
}

// AddFileFrom adds the regular file src as dst. src is read when the
// archive is written; its size is checked now. perm 0 keeps src's own
// permission bits.
func (a *Archive) AddFileFrom(dst, src string, perm fs.FileMode) error {
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("initramfs: adding %s as %s: %w", src, dst, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("initramfs: adding %s as %s: not a regular file", src, dst)
	}
	if perm == 0 {
		perm = st.Mode().Perm()
	}
	return a.add(dst, entry{info: cpio.Info{Mode: cpio.S_IFREG | uint64(perm.Perm())}, src: src})
}

// AddDir adds a directory.
func (a *Archive) AddDir(dst string, perm fs.FileMode) error {
	return a.add(dst, entry{info: cpio.Info{Mode: cpio.S_IFDIR | uint64(perm.Perm())}})
}

// AddSymlink adds a symbolic link to target.
func (a *Archive) AddSymlink(dst, target string) error {
	return a.add(dst, entry{info: cpio.Info{Mode: cpio.S_IFLNK | 0o777}, data: []byte(target)})
}

// Paths returns the archive's paths in the order they will be written.
func (a *Archive) Paths() []string {
	names := make([]string, 0, len(a.entries))
	for n := range a.entries {
		names = append(names, n)
	}
	// Sorting by path puts every directory before what it holds, as the
	// kernel needs: it does not create missing parents.
	sort.Strings(names)
	return names
}

// WriteTo writes the archive, trailer included, to w.
func (a *Archive) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	rw := cpio.Newc.Writer(cw)
	for i, name := range a.Paths() {
		e := a.entries[name]
		info := e.info
		info.Name = name
		info.Ino = uint64(i + 1)
		info.NLink = 1
		if info.Mode&cpio.S_IFMT == cpio.S_IFDIR {
			info.NLink = 2
		}
		var r io.ReaderAt
		switch {
		case e.src != "":
			f, err := os.Open(e.src)
			if err != nil {
				return cw.n, fmt.Errorf("initramfs: %s: %w", name, err)
			}
			st, err := f.Stat()
			if err != nil {
				f.Close()
				return cw.n, fmt.Errorf("initramfs: %s: %w", name, err)
			}
			info.FileSize = uint64(st.Size())
			rec := cpio.MakeReproducible(cpio.Record{ReaderAt: f, Info: info})
			err = rw.WriteRecord(rec)
			f.Close()
			if err != nil {
				return cw.n, fmt.Errorf("initramfs: writing %s from %s: %w", name, e.src, err)
			}
			continue
		default:
			r = bytes.NewReader(e.data)
			info.FileSize = uint64(len(e.data))
		}
		if err := rw.WriteRecord(cpio.MakeReproducible(cpio.Record{ReaderAt: r, Info: info})); err != nil {
			return cw.n, fmt.Errorf("initramfs: writing %s: %w", name, err)
		}
	}
	if err := cpio.WriteTrailer(rw); err != nil {
		return cw.n, fmt.Errorf("initramfs: writing trailer: %w", err)
	}
	return cw.n, nil
}

// WriteFile writes the archive to path atomically: a temporary file in the
// same directory, synced, then renamed over path.
func (a *Archive) WriteFile(p string) error {
	return atomicfile.Write(p, 0o644, func(f *os.File) error {
		_, err := a.WriteTo(f)
		return err
	})
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
