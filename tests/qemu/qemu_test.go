package qemu

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseStatus(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Status
		ok   bool
	}{
		{"vmguest count=00000001 pass=00000000 bad=00000000", Status{1, 0, 0}, true},
		{"vmguest count=0000abcd pass=00000002 bad=ffffffff", Status{0xabcd, 2, 0xffffffff}, true},
		{"vmguest count=00000001 pass=00000000 bad=00000000\r", Status{1, 0, 0}, true},
		{"vmguest filled=00000010 MiB", Status{}, false},
		{"vmguest bad at=00300040", Status{}, false},
		{"vmguest count=1 pass=2", Status{}, false},
		{"vmguest count=xyz pass=00000000 bad=00000000", Status{}, false},
		{"vmguest pass=00000000 count=00000001 bad=00000000", Status{}, false},
		{"vmguest count=100000000 pass=00000000 bad=00000000", Status{}, false},
		{"vmguest count=00000001 pass=00000000 bad=0000000", Status{}, false},
		{"vmguest count=00000001 pass=00000000 bad=-0000000", Status{}, false},
		{"", Status{}, false},
	} {
		got, ok := ParseStatus(tc.line)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseStatus(%q) = %+v, %v; want %+v, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseFilled(t *testing.T) {
	for _, tc := range []struct {
		line string
		want uint32
		ok   bool
	}{
		{"vmguest filled=00000010 MiB", 16, true},
		{"vmguest filled=00000040 MiB\r", 64, true},
		{"vmguest filled=00000010", 0, false},
		{"vmguest count=00000001 pass=00000000 bad=00000000", 0, false},
		{"vmguest filled=zz MiB", 0, false},
	} {
		got, ok := ParseFilled(tc.line)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseFilled(%q) = %d, %v; want %d, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

func TestArgv(t *testing.T) {
	in := Install{Root: "/cache/qemu/1%3a11.1.3+ds-1/root", Version: "1:11.1.3+ds-1"}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{
			"/cache/qemu/1%3a11.1.3+ds-1/root/usr/lib64/ld-linux-x86-64.so.2",
			"--library-path", "/cache/qemu/1%3a11.1.3+ds-1/root/usr/lib/x86_64-linux-gnu",
			"--argv0", "/cache/qemu/1%3a11.1.3+ds-1/root/usr/bin/qemu-system-x86_64",
			"/cache/qemu/1%3a11.1.3+ds-1/root/usr/bin/qemu-system-x86_64",
			"-L", "/cache/qemu/1%3a11.1.3+ds-1/root/usr/share/qemu",
			"-L", "/cache/qemu/1%3a11.1.3+ds-1/root/usr/share/seabios",
			"-nodefaults",
		}},
		{"/opt/qemu", []string{
			"/opt/qemu/usr/lib64/ld-linux-x86-64.so.2",
			"--library-path", "/opt/qemu/usr/lib/x86_64-linux-gnu",
			"--argv0", "/opt/qemu/usr/bin/qemu-system-x86_64",
			"/opt/qemu/usr/bin/qemu-system-x86_64",
			"-L", "/opt/qemu/usr/share/qemu",
			"-L", "/opt/qemu/usr/share/seabios",
			"-nodefaults",
		}},
	} {
		if got := in.Argv(tc.prefix, "-nodefaults"); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Argv(%q) =\n%q\nwant\n%q", tc.prefix, got, tc.want)
		}
	}
}

func TestBuildFirmware(t *testing.T) {
	for _, tc := range []struct {
		mib     int
		wait    uint32
		wantErr string
	}{
		{1, 1, ""},
		{16, DefaultWait, ""},
		{3000, 1, ""},
		{0, 1, "want 1 to 3000"},
		{3001, 1, "want 1 to 3000"},
		{16, 0, "2^32"},
	} {
		t.Run(fmt.Sprintf("%dMiB-wait%d", tc.mib, tc.wait), func(t *testing.T) {
			bin, err := BuildFirmware(t.TempDir(), tc.mib, tc.wait)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("BuildFirmware(%d, %d) = %v, want an error with %q", tc.mib, tc.wait, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			img, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			// The reset vector: a far jump to 0xf000:0000, the image's start.
			if got, want := img[0xfff0:0xfff5], []byte{0xea, 0, 0, 0, 0xf0}; !reflect.DeepEqual(got, want) {
				t.Errorf("reset vector % x, want % x", got, want)
			}
			// The fill's end, PATTERN_MIB MiB above 1 MiB, is an immediate
			// in the code.
			end := make([]byte, 4)
			binary.LittleEndian.PutUint32(end, uint32(1+tc.mib)<<20)
			if !strings.Contains(string(img[:0x1000]), string(end)) {
				t.Errorf("no fill end %#x in the code", uint32(1+tc.mib)<<20)
			}
		})
	}
}

var (
	fetchOnce sync.Once
	fetched   Install
	fetchErr  error
)

// fetchedQEMU is the QEMU of fetch.sh in DefaultCache, fetched once per
// run; the test skips if it cannot be had (no network, say).
func fetchedQEMU(t *testing.T) Install {
	t.Helper()
	fetchOnce.Do(func() { fetched, fetchErr = Fetch(DefaultCache()) })
	if fetchErr != nil {
		t.Skipf("no QEMU from tests/qemu/fetch.sh: %v", fetchErr)
	}
	return fetched
}

func TestFetchedQEMURuns(t *testing.T) {
	in := fetchedQEMU(t)
	argv := in.Argv("", "--version")
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%q: %v\n%s", argv, err, out)
	}
	// "1:11.1.3+ds-1" is upstream 11.1.3.
	upstream := in.Version
	if _, after, ok := strings.Cut(upstream, ":"); ok {
		upstream = after
	}
	upstream, _, _ = strings.Cut(upstream, "+")
	if !strings.Contains(string(out), "QEMU emulator version "+upstream) {
		t.Errorf("%s --version says %q, want upstream %s (package %s)", in.Root, out, upstream, in.Version)
	}
}

// guestRAM is a memfd of mib MiB, as a workload's preserved memfd would be.
func guestRAM(t *testing.T, mib int) *os.File {
	t.Helper()
	fd, err := unix.MemfdCreate("guest-ram", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatalf("memfd_create: %v", err)
	}
	f := os.NewFile(uintptr(fd), "guest-ram")
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(int64(mib) << 20); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestFirmwareUnderQEMU runs the guest with its RAM in a memfd, as the
// live-update VM tests do; a word changed behind the guest's back must be
// reported. Saving and restoring it is examples/vmctl's test.
func TestFirmwareUnderQEMU(t *testing.T) {
	in := fetchedQEMU(t)
	for _, tc := range []struct {
		name    string
		corrupt bool
	}{
		{"counts", false},
		{"sees a changed word", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const patternMiB, ramMiB = 4, 8
			fw, err := BuildFirmware(t.TempDir(), patternMiB, DefaultWait)
			if err != nil {
				t.Fatal(err)
			}
			ram := guestRAM(t, ramMiB)
			argv := in.Argv("", "-nodefaults", "-display", "none",
				"-machine", "pc,memory-backend=ram", "-accel", "tcg",
				"-object", fmt.Sprintf("memory-backend-file,id=ram,size=%dM,mem-path=/proc/self/fd/3,share=on", ramMiB),
				"-bios", fw, "-serial", "stdio")
			cmd := exec.Command(argv[0], argv[1:]...)
			cmd.ExtraFiles = []*os.File{ram}
			cmd.Stderr = os.Stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			serial := ReadSerial(stdout)

			first, err := serial.Next(30 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("first line %v after start: %s", time.Since(start).Round(time.Millisecond), first)
			if mib, ok := ParseFilled(first); !ok || mib != patternMiB {
				t.Fatalf("first line %q, want %s%08x MiB", first, FilledPrefix, patternMiB)
			}
			var addr uint32 = 3<<20 + 0x40 // in the third MiB of the pattern
			if tc.corrupt {
				if _, err := ram.WriteAt([]byte{0xde, 0xad, 0xbe, 0xef}, int64(addr)); err != nil {
					t.Fatal(err)
				}
			}

			var last Status
			var lines []string
			for i := 0; i < 2*patternMiB; i++ {
				st, skipped, err := serial.NextStatus(30 * time.Second)
				lines = append(lines, skipped...)
				if err != nil {
					t.Fatal(err)
				}
				if st.Count != last.Count+1 {
					t.Fatalf("count %d after %d", st.Count, last.Count)
				}
				last = st
			}
			t.Logf("%d lines in %v, last %+v", last.Count, time.Since(start).Round(time.Millisecond), last)
			if last.Passes < 1 {
				t.Errorf("%d lines over %d MiB made %d full passes, want at least 1", last.Count, patternMiB, last.Passes)
			}
			checkRAM(t, ram, last, patternMiB, tc.corrupt)
			wantBad := fmt.Sprintf("%s%08x", BadAtPrefix, addr)
			switch {
			case !tc.corrupt && (last.Bad != 0 || len(lines) != 0):
				t.Errorf("bad=%d, other lines %q; want none", last.Bad, lines)
			case tc.corrupt && (last.Bad < 1 || !reflect.DeepEqual(lines, []string{wantBad})):
				t.Errorf("bad=%d, other lines %q; want bad>0 and [%q]", last.Bad, lines, wantBad)
			}
		})
	}
}

// checkRAM reads what the guest wrote through the memfd: the count at
// CountAddr, as far as the last line or beyond, and the pattern.
func checkRAM(t *testing.T, ram *os.File, last Status, patternMiB int, corrupt bool) {
	t.Helper()
	word := make([]byte, 4)
	if _, err := ram.ReadAt(word, CountAddr); err != nil {
		t.Fatal(err)
	}
	if n := binary.LittleEndian.Uint32(word); n < last.Count {
		t.Errorf("count in RAM %d, below the last line's %d", n, last.Count)
	}
	pattern := make([]byte, patternMiB<<20)
	if _, err := ram.ReadAt(pattern, PatternAddr); err != nil {
		t.Fatal(err)
	}
	wrong := 0
	for off := 0; off < len(pattern); off += 4 {
		if binary.LittleEndian.Uint32(pattern[off:]) != PatternWord(uint32(PatternAddr+off)) {
			wrong++
		}
	}
	if want := map[bool]int{false: 0, true: 1}[corrupt]; wrong != want {
		t.Errorf("%d words of the pattern wrong in the memfd, want %d", wrong, want)
	}
}
