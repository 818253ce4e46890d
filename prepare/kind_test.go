package prepare

import (
	"os"
	"testing"

	"github.com/luoinit/luoinit/manifest"
	"golang.org/x/sys/unix"
)

func TestKind(t *testing.T) {
	mfd, err := unix.MemfdCreate("k", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	memfd := os.NewFile(uintptr(mfd), "memfd")
	defer memfd.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	plain, err := os.CreateTemp(t.TempDir(), "f")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	ev := os.NewFile(uintptr(efd), "eventfd")
	defer ev.Close()
	for _, tc := range []struct {
		f    *os.File
		want string
	}{
		{memfd, "memfd"}, {r, "pipe"}, {plain, "file"}, {ev, "anon:eventfd"},
	} {
		if got := Kind(tc.f); got != tc.want {
			t.Errorf("Kind(%s) = %q, want %q", tc.f.Name(), got, tc.want)
		}
	}
}

// Every kind prepare can write is one the manifest accepts.
func TestKindOfIsValid(t *testing.T) {
	for _, tc := range []struct{ target, want string }{
		{"/memfd:kv (deleted)", manifest.KindMemfd},
		{"pipe:[123]", manifest.KindPipe},
		{"socket:[9]", manifest.KindSocket},
		{"anon_inode:[eventfd]", "anon:eventfd"},
		{"anon_inode:inotify", "anon:inotify"},
		{"anon_inode:[luo_session]", "anon:luo_session"},
		{"anon_inode:[a name with spaces]", manifest.KindUnknown},
		{"anon_inode:", manifest.KindUnknown},
		{"/var/lib/x", manifest.KindFile},
		{"net:[4026531840]", manifest.KindUnknown},
	} {
		got := kindOf(tc.target)
		if got != tc.want {
			t.Errorf("kindOf(%q) = %q, want %q", tc.target, got, tc.want)
		}
		if !manifest.ValidKind(got) {
			t.Errorf("kindOf(%q) = %q, which a manifest refuses", tc.target, got)
		}
	}
}
