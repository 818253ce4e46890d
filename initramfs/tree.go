package initramfs

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
)

// AddTree adds the directories, regular files and symlinks under root as
// the archive's own root, except the paths in skip (archive paths, such as
// "proc" or "etc/luoinit/manifest.toml") and what lies below them. Device
// nodes, sockets and fifos are left out: devtmpfs provides the nodes, and
// the others belong to a running system. This is how a running initramfs
// is carried into the next kernel whole.
func (a *Archive) AddTree(root string, skip ...string) error {
	skipped := map[string]bool{}
	for _, s := range skip {
		c, err := clean(s)
		if err != nil {
			return err
		}
		skipped[c] = true
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("initramfs: walking %s: %w", root, err)
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		name := path.Clean(filepath.ToSlash(rel))
		if skipped[name] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("initramfs: %s: %w", p, err)
		}
		switch m := info.Mode(); {
		case m.IsDir():
			if _, ok := a.entries[name]; ok {
				return nil // New's mount points and the like stay as they are
			}
			return a.AddDir(name, m.Perm()|m&(fs.ModeSticky))
		case m.IsRegular():
			return a.AddFileFrom(name, p, m.Perm())
		case m&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("initramfs: %s: %w", p, err)
			}
			return a.AddSymlink(name, target)
		}
		return nil
	})
}
