package prepare

import (
	"os"
	"testing"

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
