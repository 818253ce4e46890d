package luo

// What needs the real kernel (create, preserve, kexec, retrieve, finish,
// refusal of a pipe, a closed session lost across the kexec) is proven by
// the VM scenarios in tests/scenarios (TestProof, TestNegative). These
// tests cover what can be checked without /dev/liveupdate.

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"kvcache", true},
		{"a", true},
		{strings.Repeat("x", 63), true},
		{"with space/and:punct", true},
		{"", false},
		{strings.Repeat("x", 64), false},
		{"nul\x00inside", false},
		{"\x00", false},
	} {
		err := ValidateName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateName(%q) = %v, not ErrInvalidName", tc.name, err)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		desc  string
		path  string
		errno unix.Errno
		hint  string
	}{
		{"missing device", filepath.Join(dir, "liveupdate"), unix.ENOENT, "liveupdate=on"},
		{"a directory", dir, unix.EISDIR, ""},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			d, err := Open(tc.path)
			if err == nil {
				d.Close()
				t.Fatalf("Open(%q) succeeded", tc.path)
			}
			if !errors.Is(err, tc.errno) {
				t.Fatalf("Open(%q) = %v, want errno %v", tc.path, err, tc.errno)
			}
			var le *Error
			if !errors.As(err, &le) || le.Op != "open" {
				t.Fatalf("Open error %T %v is not an *Error with Op open", err, err)
			}
			for _, want := range []string{tc.path, "open(", unix.ErrnoName(tc.errno), tc.hint} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Open error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestBusyHint(t *testing.T) {
	e := &Error{Op: "open", Path: DefaultPath, FD: -1, Err: unix.EBUSY, Hint: hint("open", unix.EBUSY)}
	if !errors.Is(e, unix.EBUSY) || !strings.Contains(e.Error(), "another process holds") {
		t.Fatalf("EBUSY error reads %q", e)
	}
}

// notLUO returns a Session and a Device whose fds are /dev/null: every LUO
// ioctl on them reaches the kernel and is refused with ENOTTY.
func notLUO(t *testing.T) (*Device, *Session) {
	t.Helper()
	open := func() *os.File {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	d := &Device{f: open(), path: os.DevNull}
	s := NewSession(open(), "demo")
	t.Cleanup(func() { d.Close(); s.Close() })
	return d, s
}

func TestIoctlErrorsNameEverything(t *testing.T) {
	d, s := notLUO(t)
	for _, tc := range []struct {
		desc string
		call func() error
		want []string
	}{
		{"create", func() error { _, err := d.CreateSession("kvcache"); return err }, []string{"create session", `"kvcache"`, "ioctl(", "0xba00", "ENOTTY"}},
		{"retrieve session", func() error { _, err := d.RetrieveSession("kvcache"); return err }, []string{"retrieve session", `"kvcache"`, "0xba01"}},
		{"preserve", func() error { return s.PreserveFD(0, 42) }, []string{"preserve fd", `"demo"`, "token 42", "fd 0", "0xba40"}},
		{"retrieve fd", func() error { _, err := s.RetrieveFD(7); return err }, []string{"retrieve fd", "token 7", "0xba41"}},
		{"finish", s.Finish, []string{"finish", `"demo"`, "0xba42"}},
		{"get name", func() error { _, err := s.GetName(); return err }, []string{"get name", "0xba43", "GET_NAME"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, unix.ENOTTY) {
				t.Fatalf("got %v, want ENOTTY wrapped", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestGetNameFallback(t *testing.T) {
	_, s := notLUO(t)
	_, err := s.GetName()
	if !errors.Is(err, ErrGetNameUnsupported) {
		t.Fatalf("GetName on a kernel without it = %v, want ErrGetNameUnsupported", err)
	}
}

func TestInvalidNameMakesNoIoctl(t *testing.T) {
	// A closed device would fail with ErrClosed if an ioctl were tried;
	// validation must come first.
	d := &Device{}
	for _, name := range []string{"", strings.Repeat("n", 64), "a\x00b"} {
		_, err := d.CreateSession(name)
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("CreateSession(%q) = %v, want ErrInvalidName", name, err)
		}
		_, err = d.RetrieveSession(name)
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("RetrieveSession(%q) = %v, want ErrInvalidName", name, err)
		}
	}
}

func TestClosed(t *testing.T) {
	d, s := notLUO(t)
	d.Close()
	s.Close()
	if _, err := d.CreateSession("x"); !errors.Is(err, ErrClosed) {
		t.Errorf("CreateSession on closed device = %v", err)
	}
	if err := s.PreserveFD(1, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("PreserveFD on closed session = %v", err)
	}
	if err := s.Finish(); !errors.Is(err, ErrClosed) {
		t.Errorf("Finish on closed session = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestNameEncoding(t *testing.T) {
	for _, name := range []string{"a", "kvcache", strings.Repeat("z", NameMax)} {
		b := nameBytes(name)
		if b[len(name)] != 0 {
			t.Errorf("nameBytes(%q) not NUL-terminated", name)
		}
		if got := cString(b[:]); got != name {
			t.Errorf("cString(nameBytes(%q)) = %q", name, got)
		}
	}
}

// TestKernelSetsCloexec: the first retrieved fd decides, once, whether
// the kernel's FD_CLOEXEC is trusted or set by hand on every fd.
func TestKernelSetsCloexec(t *testing.T) {
	fd := func(cloexec bool) int {
		var p [2]int
		flags := 0
		if cloexec {
			flags = unix.O_CLOEXEC
		}
		if err := unix.Pipe2(p[:], flags); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
		return p[0]
	}
	for _, tc := range []struct {
		desc  string
		first bool // the first fd's FD_CLOEXEC
		want  bool // kernelSetsCloexec for it and for every later fd
	}{
		{"the kernel sets it", true, true},
		{"the kernel does not", false, false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			retrievedCloexec.Store(0)
			defer retrievedCloexec.Store(0)
			if got := kernelSetsCloexec(fd(tc.first)); got != tc.want {
				t.Fatalf("first fd: %v, want %v", got, tc.want)
			}
			// Later fds are not looked at: the answer stays, whatever they have.
			for _, later := range []bool{!tc.first, tc.first} {
				if got := kernelSetsCloexec(fd(later)); got != tc.want {
					t.Errorf("later fd (FD_CLOEXEC %v): %v, want %v", later, got, tc.want)
				}
			}
		})
	}
	retrievedCloexec.Store(0)
	if kernelSetsCloexec(-1) {
		t.Error("an fd fcntl fails on is taken as having FD_CLOEXEC")
	}
	if retrievedCloexec.Load() != 2 {
		t.Error("after a failed fcntl every fd should get FD_CLOEXEC by hand")
	}
	retrievedCloexec.Store(0)
}
