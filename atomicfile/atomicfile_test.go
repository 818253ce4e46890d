package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		desc    string
		old     string // content before, "" for none
		write   func(*os.File) error
		want    string // content after
		wantErr error
	}{
		{"new file", "", func(f *os.File) error { _, err := f.WriteString("new"); return err }, "new", nil},
		{"replaces", "old", func(f *os.File) error { _, err := f.WriteString("new"); return err }, "new", nil},
		{"a failed write leaves the old file", "old", func(f *os.File) error { f.WriteString("half"); return boom }, "old", boom},
		{"a failed write leaves no file", "", func(f *os.File) error { return boom }, "", boom},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "f")
			if tc.old != "" {
				os.WriteFile(p, []byte(tc.old), 0o600)
			}
			err := Write(p, 0o640, tc.write)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Write = %v, want %v", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name %s", err, p)
			}
			b, rerr := os.ReadFile(p)
			switch {
			case tc.want == "" && !errors.Is(rerr, os.ErrNotExist):
				t.Fatalf("file there after a failed first write: %q %v", b, rerr)
			case tc.want != "" && string(b) != tc.want:
				t.Fatalf("content %q, want %q", b, tc.want)
			}
			if st, err := os.Stat(p); err == nil && tc.wantErr == nil && st.Mode().Perm() != 0o640 {
				t.Errorf("mode %v, want 0640", st.Mode().Perm())
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if e.Name() != "f" {
					t.Errorf("left behind: %s", e.Name())
				}
			}
		})
	}
}

func TestWriteBytesMissingDir(t *testing.T) {
	p := filepath.Join(t.TempDir(), "no", "such", "f")
	if err := WriteBytes(p, 0o644, []byte("x")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("WriteBytes into a missing directory: %v", err)
	}
}
