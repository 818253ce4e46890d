package notify

import (
	"os"
	"reflect"
	"testing"

	"github.com/luoinit/luoinit/handoff"
	"golang.org/x/sys/unix"
)

// memfd returns a new memfd, closed when the test ends. Until then the
// test holds it: a test that passes only f.Fd() on would otherwise let the
// garbage collector close the fd under it (and a later test's fd numbers
// be closed by this one's finalizers).
func memfd(t *testing.T, name string) *os.File {
	t.Helper()
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	return keep(t, os.NewFile(uintptr(fd), name))
}

// keep closes f when the test ends (if nothing closed it before) and
// holds it until then.
func keep(t *testing.T, f *os.File) *os.File {
	t.Cleanup(func() { f.Close() })
	return f
}

// dup returns a second fd for the same file, which the store must see as
// the same file.
func dup(t *testing.T, f *os.File) *os.File {
	t.Helper()
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return keep(t, os.NewFile(uintptr(fd), f.Name()))
}

func closed(f *os.File) bool {
	_, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0)
	return err != nil
}

func TestStoreLimitDuplicatesRemove(t *testing.T) {
	s := NewStore("w", 3)
	a, b, c, d := memfd(t, "a"), memfd(t, "b"), memfd(t, "c"), memfd(t, "d")
	if r := s.Add("x", []*os.File{a, b}); r.Added != 2 {
		t.Fatalf("Add = %+v, want 2 added", r)
	}
	again := dup(t, a)
	if r := s.Add("y", []*os.File{again}); r.Duplicates != 1 || r.Added != 0 {
		t.Fatalf("Add of a dup = %+v, want it recognised as stored", r)
	}
	if !closed(again) {
		t.Fatal("the duplicate was not closed")
	}
	// Over the limit: the third is stored, the fourth closed.
	if r := s.Add("z", []*os.File{c, d}); r.Added != 1 || r.Refused != 1 {
		t.Fatalf("Add over the limit = %+v, want 1 added 1 refused", r)
	}
	if !closed(d) || closed(c) {
		t.Fatal("the fd over the limit must be closed, the one under it kept")
	}
	if got := s.Names(); !reflect.DeepEqual(got, []string{"x", "x", "z"}) {
		t.Fatalf("names %v, want store order x x z", got)
	}
	if n := s.Remove("x"); n != 2 || !closed(a) || !closed(b) {
		t.Fatalf("Remove(x) = %d, want both x closed and removed", n)
	}
	if n := s.Remove("nothing"); n != 0 || s.Len() != 1 {
		t.Fatalf("Remove(nothing) = %d, len %d", n, s.Len())
	}
	s.Close()
	if !closed(c) || s.Len() != 0 {
		t.Fatal("Close left fds open")
	}
}

func TestStoreOff(t *testing.T) {
	s := NewStore("w", 0)
	f := memfd(t, "a")
	if r := s.Add("a", []*os.File{f}); r.Refused != 1 || !closed(f) || s.Len() != 0 {
		t.Fatalf("a store with limit 0 must refuse and close: %+v", r)
	}
}

func TestStorePutAndDup(t *testing.T) {
	s := NewStore("w", 1) // Put is not limited: the fds came through a live update
	a, b := memfd(t, "a"), memfd(t, "b")
	a.WriteString("arena")
	s.Put([]handoff.File{{Name: "arena", File: a}, {Name: "log", File: b}, {Name: "again", File: dup(t, a)}})
	if got := s.Names(); !reflect.DeepEqual(got, []string{"arena", "log"}) {
		t.Fatalf("names %v after Put", got)
	}
	files, err := s.Dup()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Name != "arena" || files[1].Name != "log" {
		t.Fatalf("Dup = %v", files)
	}
	buf := make([]byte, 5)
	if _, err := files[0].File.ReadAt(buf, 0); err != nil || string(buf) != "arena" {
		t.Fatalf("the dup does not read the stored memfd: %q %v", buf, err)
	}
	if fl, _ := unix.FcntlInt(files[0].File.Fd(), unix.F_GETFD, 0); fl&unix.FD_CLOEXEC == 0 {
		t.Fatal("a dup must be close-on-exec")
	}
	for _, f := range files {
		f.File.Close()
	}
	if s.Len() != 2 || closed(a) {
		t.Fatal("closing the dups touched the store")
	}
	s.Close()
}
