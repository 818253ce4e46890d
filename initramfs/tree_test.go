package initramfs

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
)

func TestAddTree(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"bin", "etc/luoinit", "proc/1", "boot"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "bin/tool"), []byte("tool"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/luoinit/config.toml"), []byte("config"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/luoinit/manifest.toml"), []byte("old manifest"), 0o644)
	os.WriteFile(filepath.Join(root, "proc/1/status"), []byte("not to be packed"), 0o644)
	os.Symlink("tool", filepath.Join(root, "bin/alias"))

	a := New()
	if err := a.AddTree(root, "proc", "etc/luoinit/manifest.toml"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := a.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	got := map[string]cpio.Record{}
	for _, r := range readBack(t, buf.Bytes()) {
		got[r.Name] = r
	}
	for _, tc := range []struct {
		name, content string
		mode          uint64
		present       bool
	}{
		{"bin/tool", "tool", cpio.S_IFREG | 0o755, true},
		{"bin/alias", "tool", cpio.S_IFLNK | 0o777, true},
		{"etc/luoinit/config.toml", "config", cpio.S_IFREG | 0o644, true},
		{"boot", "", cpio.S_IFDIR | 0o755, true},
		{"dev/console", "", cpio.S_IFCHR | 0o600, true},
		{"proc", "", cpio.S_IFDIR | 0o755, true}, // the mount point stays
		{"proc/1/status", "", 0, false},
		{"etc/luoinit/manifest.toml", "", 0, false},
	} {
		r, ok := got[tc.name]
		if ok != tc.present {
			t.Errorf("%s present %v, want %v", tc.name, ok, tc.present)
			continue
		}
		if !ok {
			continue
		}
		if r.Mode != tc.mode || string(content(t, r)) != tc.content {
			t.Errorf("%s: mode %o content %q, want %o %q", tc.name, r.Mode, content(t, r), tc.mode, tc.content)
		}
	}
}
