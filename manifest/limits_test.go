package manifest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// hostile are inputs built to exhaust a parser, each with the problem it
// must get. The first ones are the reproducers that took every reader of
// the format down with "fatal error: out of memory".
var hostile = []struct {
	name string
	in   func() string
	want string
}{
	{"deep inline tables", func() string {
		return "version = 1\nx = " + strings.Repeat("{a=", 10000) + "1" + strings.Repeat("}", 10000) + "\n"
	}, `:2: "x.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a": arrays and inline tables nested more than 16 deep`},
	{"deep arrays", func() string {
		return "version = 1\nx = " + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "\n"
	}, ":2: \"x[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]\": arrays and inline tables nested more than 16 deep"},
	{"long dotted header", func() string {
		parts := make([]string, 20000)
		for i := range parts {
			parts[i] = fmt.Sprintf("t%d", i)
		}
		return "version = 1\n[" + strings.Join(parts, ".") + "]\nk = 1\n"
	}, `:2: dotted key "t0.t1.t2"... has more than 8 parts`},
	{"long dotted key", func() string {
		return "version = 1\n" + strings.Repeat("a.", 50000) + "a = 1\n"
	}, `:2: dotted key "a.a.a"... has more than 8 parts`},
	{"long key", func() string {
		return "version = 1\n" + strings.Repeat("k", 1<<20) + " = 1\n"
	}, `:2: key "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"... (1048576 bytes) is 1048576 bytes long (at most 128)`},
	{"long quoted key", func() string {
		return "version = 1\n[workload]\n\"" + strings.Repeat("q", 4000) + "\" = 1\n"
	}, `:3: key "qqqq`},
	{"many tables", func() string {
		return "version = 1\n" + strings.Repeat("[[workload]]\nname = \"a/b\"\n", 100000)
	}, fmt.Sprintf(":%d: more than 10000 tables: the limit of a luoinit file", 2+2*10000)},
	{"many fd tables, past the fast path's limit", func() string {
		return "version = 1\n[[workload]]\n" + strings.Repeat("[[workload.fd]]\nname = \"a/b\"\n", 30000)
	}, fmt.Sprintf(":%d: more than 10000 tables: the limit of a luoinit file", 2+1+2*10000-2)},
	{"many fd tables, within the fast path's limit", func() string {
		return "version = 1\n[[workload]]\n" + strings.Repeat("[[workload.fd]]\nname = \"a/b\"\n", 16000)
	}, fmt.Sprintf(":%d: more than 10000 tables: the limit of a luoinit file", 2+1+2*10000-2)},
	{"many values", func() string {
		return "version = 1\nx = [" + strings.Repeat("1,", 300000) + "]\n"
	}, ":2: more than 100000 keys and array elements: the limit of a luoinit file"},
	{"NUL at the end", func() string {
		return "version = 1\n\x00"
	}, ":2: a NUL byte at column 1: a config or manifest is text"},
	{"NUL in a string", func() string {
		return "version = 1\n[[workload]]\nname = \"k\x00v\"\n"
	}, ":3: a NUL byte at column 10"},
	{"too large", func() string {
		return "version = 1\n" + strings.Repeat("# padding\n", MaxFileSize/10)
	}, ": larger than 4194304 bytes (4 MiB), the limit of a luoinit config or manifest"},
}

// Every hostile input is refused with its problem and line, quickly and in
// bounded memory, by both parsers.
func TestHostileInputs(t *testing.T) {
	for _, tc := range hostile {
		in := []byte(tc.in())
		for _, kind := range []string{"config", "manifest"} {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				start := time.Now()
				var err error
				if kind == "config" {
					_, err = ParseConfig(in)
				} else {
					_, err = Parse(in)
				}
				took := time.Since(start)
				runtime.ReadMemStats(&after)
				want := kind + ".toml" + tc.want
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("got %v\nwant %s", err, want)
				}
				if n := strings.Count(err.Error(), "\n"); n != 0 {
					t.Errorf("%d problems, want only the limit:\n%v", n+1, err)
				}
				if len(err.Error()) > 300 {
					t.Errorf("message of %d bytes: %.300s", len(err.Error()), err)
				}
				if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
					t.Errorf("allocated %d MiB for a %d KiB input", alloc>>20, len(in)>>10)
				}
				if took > 2*time.Second {
					t.Errorf("took %v", took)
				}
			})
		}
	}
}

// Loading reads at most one byte past the limit: an endless file fails at
// once instead of filling memory.
func TestLoadEndless(t *testing.T) {
	for _, load := range []func(string) error{
		func(p string) error { _, err := Load(p); return err },
		func(p string) error { _, err := LoadConfig(p); return err },
	} {
		start := time.Now()
		err := load("/dev/zero")
		if err == nil || !strings.Contains(err.Error(), "/dev/zero: larger than 4194304 bytes") {
			t.Errorf("/dev/zero: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("/dev/zero refused after %v", d)
		}
	}
	// The limit itself is accepted as a size.
	path := filepath.Join(t.TempDir(), "big.toml")
	body := "version = 1\ngeneration = 1\n"
	body += strings.Repeat("#", MaxFileSize-len(body)-1) + "\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Errorf("a file of exactly %d bytes: %v", MaxFileSize, err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
}

// A file with many problems reports the first MaxProblems, in file order,
// and counts the rest.
func TestProblemsCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("version = 1\n")
	for i := 0; i < 5000; i++ {
		b.WriteString("[[workload]]\nname = \"a/b\"\n")
	}
	_, err := ParseConfig([]byte(b.String()))
	if err == nil {
		t.Fatal("accepted")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != MaxProblems+1 {
		t.Fatalf("%d lines, want %d", len(lines), MaxProblems+1)
	}
	if !strings.HasPrefix(lines[0], "config.toml:2: workload[0]: ") {
		t.Errorf("first line %q", lines[0])
	}
	// Each workload has three problems (name, argv, handoff).
	if want := fmt.Sprintf("... and %d more problems (only the first %d are shown)", 3*5000-MaxProblems, MaxProblems); lines[MaxProblems] != want {
		t.Errorf("last line %q, want %q", lines[MaxProblems], want)
	}
}

// The one name rule: what the manifest accepts, the handoff wire and LUO
// take; what the wire refuses, the manifest refuses before the kexec.
func TestNamesAgreeWithTheWire(t *testing.T) {
	for _, tc := range []struct {
		workload, fd string
		want         string
	}{
		{"kv", "a/b", `fd name "a/b" contains '/'`},
		{"kv", ".", `fd name "." is not allowed`},
		{"kv", "..", `fd name ".." is not allowed`},
		{"kv", strings.Repeat("n", 256), `is 256 bytes long (at most 255)`},
		{"kv", "a:b", `fd name "a:b" contains ':'`},
		{"kv", "tab\there", `contains the control character U+0009`},
		{".", "a", `workload name "." is not allowed`},
		{"..", "a", `workload name ".." is not allowed`},
		{"a/b", "a", `workload name "a/b" contains '/'`},
	} {
		in := fmt.Sprintf("version = 1\n[[workload]]\nname = %q\nargv = [\"/bin/kv\"]\nhandoff = \"socket\"\n[[workload.fd]]\nname = %q\n", tc.workload, tc.fd)
		_, err := ParseConfig([]byte(in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("workload %q fd %q: %v, want %q", tc.workload, tc.fd, err, tc.want)
		}
	}
}

// pids and fd numbers are checked against what the kernel takes: a larger
// value would be truncated to 32 bits and name another process or fd.
func TestPidAndFDRange(t *testing.T) {
	for _, tc := range []struct {
		pid, number string
		want        string
	}{
		{"4294967297", "3", "pid 4294967297 is not valid: pids are 1 to 4194304"},
		{"4194305", "3", "pid 4194305 is not valid"},
		{"0", "3", "pid 0 is not valid"},
		{"42", "4294967296", "number 4294967296 is not a valid fd: fds are 0 to 2147483647"},
		{"42", "2147483648", "number 2147483648 is not a valid fd"},
	} {
		in := fmt.Sprintf("version = 1\n[[workload]]\nname = \"kv\"\nargv = [\"/bin/kv\"]\nhandoff = \"pidfd\"\npid = %s\n[[workload.fd]]\nname = \"a\"\nnumber = %s\n", tc.pid, tc.number)
		_, err := ParseConfig([]byte(in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("pid %s number %s: %v, want %q", tc.pid, tc.number, err, tc.want)
		}
	}
	in := "version = 1\n[[workload]]\nname = \"kv\"\nargv = [\"/bin/kv\"]\nhandoff = \"pidfd\"\npid = 4194304\n[[workload.fd]]\nname = \"a\"\nnumber = 2147483647\n"
	if _, err := ParseConfig([]byte(in)); err != nil {
		t.Errorf("the largest pid and fd: %v", err)
	}
}

func TestValidKind(t *testing.T) {
	for _, tc := range []struct {
		kind string
		ok   bool
	}{
		{KindMemfd, true}, {KindPipe, true}, {KindSocket, true}, {KindFile, true}, {KindUnknown, true},
		{"anon:eventfd", true}, {"anon:io_uring", true}, {"anon:luo_session", true},
		{"teapot", false}, {"", false}, {"anon:", false}, {"anon:a b", false}, {"anon:" + strings.Repeat("x", 65), false}, {"MEMFD", false},
	} {
		if got := ValidKind(tc.kind); got != tc.ok {
			t.Errorf("ValidKind(%q) = %v, want %v", tc.kind, got, tc.ok)
		}
	}
	if got := AnonKind("[weird name]"); got != KindUnknown {
		t.Errorf("AnonKind of a name that breaks the rule = %q, want %q", got, KindUnknown)
	}
	if got := AnonKind("eventfd"); got != "anon:eventfd" {
		t.Errorf("AnonKind(eventfd) = %q", got)
	}
}
