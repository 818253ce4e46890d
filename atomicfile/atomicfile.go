// Package atomicfile writes a file so that a reader sees the old content or
// the new one, never a part of it, and the new one survives a crash once
// Write returns: the one file-writing rule of luoinit, for the manifest,
// the manifest's copy and the state file.
//
//	err := atomicfile.WriteBytes("/run/luoinit/state", 0o644, data)
//	err = atomicfile.Write(out, 0o644, func(f *os.File) error { _, err := a.WriteTo(f); return err })
//
// It writes a temporary file in the same directory (so that the rename
// stays within one file system), fsyncs it, renames it over the path and
// fsyncs the directory, so that the rename itself is durable. On any
// failure the temporary file is removed and the path is left as it was.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write writes path with the bytes write puts in the temporary file, with
// mode perm (not subject to the umask).
func Write(path string, perm os.FileMode, write func(*os.File) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	step := func(what string, e error) error {
		if e != nil {
			return fmt.Errorf("writing %s: %s %s: %w", path, what, tmp, e)
		}
		return nil
	}
	if err = step("write", write(f)); err != nil {
		return err
	}
	if err = step("fchmod", f.Chmod(perm.Perm())); err != nil {
		return err
	}
	if err = step("fsync", f.Sync()); err != nil {
		return err
	}
	if err = step("close", f.Close()); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	d, derr := os.Open(dir)
	if derr != nil {
		return fmt.Errorf("writing %s: opening its directory to sync it: %w", path, derr)
	}
	defer d.Close()
	if derr := d.Sync(); derr != nil {
		return fmt.Errorf("writing %s: fsync of directory %s: %w", path, dir, derr)
	}
	return nil
}

// WriteBytes writes data to path as Write does.
func WriteBytes(path string, perm os.FileMode, data []byte) error {
	return Write(path, perm, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}
