package luo

// That IsSession, SessionName and ProcSessions recognise real session fds
// (created before the kexec, retrieved after it, held by another process)
// is proven by the VM scenario TestOwnedSessions.

import (
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseSessionLink(t *testing.T) {
	for _, tc := range []struct {
		link string
		name string
		ok   bool
	}{
		{"anon_inode:[luo_session] test-session", "test-session", true},
		{"anon_inode:[luo_session] with space", "with space", true},
		{"anon_inode:[luo_session] " + strings.Repeat("n", 63), strings.Repeat("n", 63), true},
		{"anon_inode:[luo_session]", "", true}, // a kernel that does not name the inode
		{"anon_inode:[luo_session] " + strings.Repeat("n", 64), "", false},
		{"anon_inode:[luo_session] ", "", false},
		{"anon_inode:[luo_session]x", "", false},
		{"anon_inode:[eventfd]", "", false},
		{"/memfd:arena (deleted)", "", false},
		{"socket:[1234]", "", false},
		{"", "", false},
	} {
		name, ok := ParseSessionLink(tc.link)
		if name != tc.name || ok != tc.ok {
			t.Errorf("ParseSessionLink(%q) = %q, %v; want %q, %v", tc.link, name, ok, tc.name, tc.ok)
		}
	}
}

func FuzzParseSessionLink(f *testing.F) {
	for _, s := range []string{"anon_inode:[luo_session] a", "anon_inode:[luo_session]", "pipe:[1]", "anon_inode:[luo_session] a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, link string) {
		name, ok := ParseSessionLink(link)
		if !ok && name != "" {
			t.Fatalf("not a session but name %q", name)
		}
		if ok && name != "" && ValidateName(name) != nil {
			t.Fatalf("invalid name %q accepted", name)
		}
		if ok && !strings.HasPrefix(link, sessionLink) {
			t.Fatalf("%q accepted", link)
		}
	})
}

func TestNotASession(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	mfd, err := unix.MemfdCreate("not-a-session", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	m := os.NewFile(uintptr(mfd), "memfd")
	defer m.Close()
	for _, f := range []*os.File{r, m} {
		is, err := IsSession(f)
		if err != nil || is {
			t.Errorf("IsSession(%s) = %v, %v; want false, nil", f.Name(), is, err)
		}
		name, err := SessionName(f)
		if err == nil {
			t.Errorf("SessionName(%s) = %q, want an error", f.Name(), name)
		}
		if !errors.Is(err, unix.ENOTTY) || !strings.Contains(err.Error(), "not a LUO session") {
			t.Errorf("SessionName(%s) error %q: want ENOTTY and the link named", f.Name(), err)
		}
	}
}

func TestProcSessionsNone(t *testing.T) {
	got, err := ProcSessions(os.Getpid())
	if err != nil || len(got) != 0 {
		t.Fatalf("ProcSessions(self) = %v, %v; want none", got, err)
	}
	if _, err := ProcSessions(1 << 30); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ProcSessions of no process = %v, want ErrNotExist", err)
	}
}
