package manifest

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/luo"
)

func intp(n int) *int { return &n }

// fullManifest sets every field of a manifest.
func fullManifest() *Manifest {
	at := func(ms int) Stamp {
		return Stamp{
			MonotonicNS: 81_234_000_000 + int64(ms)*1e6,
			Realtime:    time.Date(2025, 6, 1, 12, 0, 4, 900_000_000+ms*1e6, time.UTC),
		}
	}
	return &Manifest{
		Version:       Version,
		Generation:    3,
		Written:       time.Date(2025, 6, 1, 12, 0, 5, 123456789, time.UTC),
		KernelRelease: "6.19.0-luo",
		Timing: Timing{
			PrepareStart: at(0),
			Preserved:    at(6),
			FirstStopped: at(4),
			Reboot:       at(17),
		},
		Workloads: []Workload{
			{
				Name:        "kv",
				Argv:        []string{"/usr/bin/kvd", "--arena", "/run/kv", "quote \" and \\ and\nnewline", "ünïcödé"},
				Env:         []string{"KV_LOG=info", "EMPTY="},
				Dir:         "/var/lib/kv",
				UID:         1000,
				GID:         4294967294,
				Handoff:     "socket",
				Stop:        "term",
				StopTimeout: Duration{10*time.Second + 5*time.Millisecond},
				Restart:     "on-failure",
				FDSession:   "luoinit.kv",
				FDs: []FD{
					{Name: "arena", Token: 1, Kind: "memfd"},
					{Name: "log", Optional: true, Token: 9223372036854775807, Kind: "memfd"},
				},
			},
			{
				Name:      "cache",
				Argv:      []string{"/usr/bin/cached"},
				Handoff:   "pidfd",
				PID:       4242,
				Stop:      "sigstop",
				FDSession: "luoinit.cache",
				FDs: []FD{
					{Name: "heap", Number: intp(0), Token: 1, Kind: "memfd"},
					{Name: "index", Optional: true, Number: intp(8), Dropped: true, DropReason: "preserve fd: EOPNOTSUPP"},
				},
			},
			{
				Name:      "bare",
				Argv:      []string{"/bin/true"},
				Handoff:   "pidfd",
				PIDFile:   "/run/bare.pid",
				FDSession: "luoinit.bare",
			},
		},
	}
}

func TestRoundTrip(t *testing.T) {
	golden, err := os.ReadFile("testdata/manifest.toml")
	if err != nil {
		t.Fatal(err)
	}
	fromFile, err := Parse(golden)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		m    *Manifest
	}{
		{"full", fullManifest()},
		{"testdata", fromFile},
		{"minimal", &Manifest{Version: Version, Generation: 1}},
		{"every character", func() *Manifest {
			var all []rune
			for r := rune(0); r < 0x300; r++ {
				all = append(all, r)
			}
			all = append(all, 0xfffd, 0x10ffff, 0x1f600)
			m := fullManifest()
			m.KernelRelease = string(all)
			m.Workloads[1].FDs[1].DropReason = string(all)
			m.Workloads[0].Argv = append(m.Workloads[0].Argv, string(all[1:]), "", "'''", `"""`)
			m.Workloads[0].Env = append(m.Workloads[0].Env, "X="+string(all[1:]))
			return m
		}()},
		{"no timing", func() *Manifest { m := fullManifest(); m.Timing = Timing{}; m.Written = time.Time{}; return m }()},
		{"monotonic only", func() *Manifest {
			m := fullManifest()
			m.Timing.Reboot.Realtime = time.Time{}
			return m
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b1, err := tc.m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			b2, err := tc.m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b1, b2) {
				t.Fatalf("two Marshals differ:\n%s\n---\n%s", b1, b2)
			}
			got, err := Parse(b1)
			if err != nil {
				t.Fatalf("Parse(Marshal()): %v\n%s", err, b1)
			}
			if !reflect.DeepEqual(got, tc.m) {
				t.Fatalf("round trip changed the manifest:\nwant %+v\ngot  %+v\n%s", tc.m, got, b1)
			}
		})
	}
}

// The golden file is Marshal's own output: it shows the format and pins
// its byte layout.
func TestMarshalGolden(t *testing.T) {
	golden, err := os.ReadFile("testdata/manifest.toml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(golden)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, golden) {
		t.Errorf("Marshal does not reproduce testdata/manifest.toml:\n%s", b)
	}
	for _, absent := range []string{"pid = 0", "token = 0", "env = []"} {
		if bytes.Contains(b, []byte(absent)) {
			t.Errorf("Marshal wrote %q, a field at its zero value", absent)
		}
	}
}

// Empty arrays read as absent ones, so that a file and its rewrite agree.
func TestEmptyIsAbsent(t *testing.T) {
	in := withoutSession(sockWorkload) + "env = []\nfd = []\n"
	c, err := ParseConfig([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Workloads[0]; w.Env != nil || w.FDs != nil {
		t.Errorf("env %#v, fd %#v: want nil", w.Env, w.FDs)
	}
	c, err = ParseConfig([]byte("version = 1\nworkload = []\n"))
	if err != nil || c.Workloads != nil {
		t.Errorf("workload = []: %#v, %v", c, err)
	}
}

func TestMarshalValidates(t *testing.T) {
	m := fullManifest()
	m.Workloads[0].FDs[0].Token = 0
	if _, err := m.Marshal(); err == nil || !strings.Contains(err.Error(), `workload "kv" fd "arena": token is missing`) {
		t.Fatalf("Marshal of a manifest with a fd without token: %v", err)
	}
	m = fullManifest()
	m.Generation = 1 << 63
	m.Workloads[0].FDs[0].Token = 1 << 63
	err := m.Validate()
	for _, want := range []string{
		"generation: generation 9223372036854775808 is out of range: TOML integers are signed 64-bit",
		`workload[0].fd[0].token: workload "kv" fd "arena": token 9223372036854775808 is out of range`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want %q", err, want)
		}
	}
	m = fullManifest()
	m.KernelRelease = "\xff"
	if _, err := m.Marshal(); err == nil || !strings.Contains(err.Error(), "kernel_release is not valid UTF-8") {
		t.Fatalf("Marshal of invalid UTF-8: %v", err)
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "manifest.toml")
	if err := os.WriteFile(path, []byte("old content"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := fullManifest()
	if err := m.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	want, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("file content differs from Marshal:\n%s", got)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	assertOnly(t, dir, "manifest.toml")

	loaded, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(loaded, m) {
		t.Errorf("Load(WriteFile(m)) != m")
	}

	// An invalid manifest is not written, and no temporary file stays.
	bad := fullManifest()
	bad.Version = 0
	if err := bad.WriteFile(path); err == nil {
		t.Fatal("WriteFile wrote an invalid manifest")
	}
	if got2, _ := os.ReadFile(path); !bytes.Equal(got2, want) {
		t.Error("a failed WriteFile changed the file")
	}
	assertOnly(t, dir, "manifest.toml")

	if err := m.WriteFile(filepath.Join(dir, "missing", "manifest.toml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("WriteFile into a missing directory: %v, want ErrNotExist", err)
	}
}

func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if !reflect.DeepEqual(got, names) {
		t.Errorf("directory holds %q, want %q", got, names)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "m.toml")
	if err := os.WriteFile(bad, []byte("version = 1\n\n[[workload]]\nname = \"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(bad)
	if err == nil || !strings.Contains(err.Error(), bad+":4: workload[0]: name is missing") {
		t.Errorf("Load error %q does not name the file and line", err)
	}
	_, err = LoadConfig(bad)
	if err == nil || !strings.Contains(err.Error(), bad+":4: workload[0]: name is missing") {
		t.Errorf("LoadConfig error %q does not name the file and line", err)
	}
	for _, load := range []func(string) error{
		func(p string) error { _, err := Load(p); return err },
		func(p string) error { _, err := LoadConfig(p); return err },
	} {
		if err := load(filepath.Join(dir, "none")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("loading a missing file: %v, want ErrNotExist", err)
		}
	}
	c, err := LoadConfig("testdata/config.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Workloads) != 2 || c.Workloads[1].FDs[1].Name != "index" || *c.Workloads[1].FDs[1].Number != 8 {
		t.Errorf("LoadConfig read %+v", c)
	}
	if c.Workloads[0].StopTimeout.Duration != 10*time.Second {
		t.Errorf("stop_timeout read as %v", c.Workloads[0].StopTimeout)
	}
}

func TestNewManifest(t *testing.T) {
	c, err := LoadConfig("testdata/config.toml")
	if err != nil {
		t.Fatal(err)
	}
	before, err := LoadConfig("testdata/config.toml")
	if err != nil {
		t.Fatal(err)
	}
	m := c.NewManifest()
	if m.Version != Version {
		t.Errorf("Version %d, want %d", m.Version, Version)
	}
	if len(m.Workloads) != len(c.Workloads) {
		t.Fatalf("%d workloads, want %d", len(m.Workloads), len(c.Workloads))
	}
	for i, w := range m.Workloads {
		if want := "luoinit." + c.Workloads[i].Name; w.FDSession != want {
			t.Errorf("workload %d session %q, want %q", i, w.FDSession, want)
		}
	}

	// Everything the manifest holds is its own.
	w := &m.Workloads[0]
	w.Name = "changed"
	w.Argv[0] = "/changed"
	w.Env[0] = "CHANGED=1"
	w.FDs[0].Name = "changed"
	w.FDs[0].Token = 9
	*m.Workloads[1].FDs[0].Number = 99
	m.Workloads[1].Argv = append(m.Workloads[1].Argv[:1], "appended")
	if !reflect.DeepEqual(c, before) {
		t.Errorf("changing the manifest changed the config:\n%+v\nwas\n%+v", c, before)
	}
	if c.Workloads[0].FDSession != "" {
		t.Error("NewManifest set a session in the config")
	}

	// With tokens assigned it is a valid manifest.
	m = c.NewManifest()
	for i := range m.Workloads {
		for j := range m.Workloads[i].FDs {
			m.Workloads[i].FDs[j].Token = uint64(j + 1)
		}
	}
	if err := m.Validate(); err != nil {
		t.Errorf("NewManifest with tokens: %v", err)
	}

	if m := (&Config{Version: 1}).NewManifest(); m.Workloads != nil || m.Version != Version {
		t.Errorf("NewManifest of an empty config: %+v", m)
	}
}

func TestSessionName(t *testing.T) {
	if got := SessionName("kv"); got != "luoinit.kv" {
		t.Errorf("SessionName(kv) = %q", got)
	}
	if sessionNameMax != luo.NameMax {
		t.Errorf("sessionNameMax %d, luo.NameMax %d", sessionNameMax, luo.NameMax)
	}
	longest := strings.Repeat("w", handoff.MaxWorkloadLen)
	if err := luo.ValidateName(SessionName(longest)); err != nil {
		t.Errorf("the longest workload name gives a bad session name: %v", err)
	}
	if err := luo.ValidateName(SessionName(longest + "w")); err == nil {
		t.Errorf("handoff.MaxWorkloadLen %d is not the longest that fits", handoff.MaxWorkloadLen)
	}
}

func TestBlackout(t *testing.T) {
	for _, tc := range []struct {
		first, reboot int64
		want          time.Duration
	}{
		{100, 350, 250},
		{0, 350, 0},
		{100, 0, 0},
		{0, 0, 0},
		{1_000_000_000, 1_183_000_000, 183 * time.Millisecond},
	} {
		tm := Timing{FirstStopped: Stamp{MonotonicNS: tc.first}, Reboot: Stamp{MonotonicNS: tc.reboot}}
		if got := tm.Blackout(); got != tc.want {
			t.Errorf("Blackout(first_stopped %d, reboot %d) = %v, want %v", tc.first, tc.reboot, got, tc.want)
		}
	}
	if got := fullManifest().Timing.Blackout(); got != 13*time.Millisecond {
		t.Errorf("full manifest blackout %v, want 13ms", got)
	}
}

func TestNow(t *testing.T) {
	a := Now()
	time.Sleep(2 * time.Millisecond)
	b := Now()
	if a.MonotonicNS <= 0 || b.MonotonicNS-a.MonotonicNS < int64(2*time.Millisecond) {
		t.Errorf("monotonic %d then %d", a.MonotonicNS, b.MonotonicNS)
	}
	if a.Realtime.Location() != time.UTC {
		t.Errorf("realtime in %v, want UTC", a.Realtime.Location())
	}
	if a.Realtime != a.Realtime.Round(0) {
		t.Error("realtime carries a monotonic reading")
	}
	if d := time.Since(a.Realtime); d < 0 || d > time.Minute {
		t.Errorf("realtime %v is %v from now", a.Realtime, d)
	}
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		text string
		want time.Duration
		ok   bool
	}{
		{"5s", 5 * time.Second, true},
		{"1m30s", 90 * time.Second, true},
		{"250ms", 250 * time.Millisecond, true},
		{"0s", 0, true},
		{"5", 0, false},
		{"soon", 0, false},
		{"", 0, false},
	} {
		var d Duration
		err := d.UnmarshalText([]byte(tc.text))
		if (err == nil) != tc.ok || d.Duration != tc.want {
			t.Errorf("UnmarshalText(%q) = %v, %v", tc.text, d.Duration, err)
			continue
		}
		if !tc.ok {
			continue
		}
		b, err := d.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Duration
		if err := back.UnmarshalText(b); err != nil || back != d {
			t.Errorf("%q: MarshalText gave %q, which reads back as %v, %v", tc.text, b, back, err)
		}
	}
}

func TestSummary(t *testing.T) {
	s := fullManifest().Summary()
	for _, want := range []string{
		"manifest version 1, generation 3\n",
		"written 2025-06-01T12:00:05Z by kernel 6.19.0-luo\n",
		"blackout 13ms",
		"3 workloads, 3 fds preserved, 1 dropped\n",
		`workload kv: session "luoinit.kv", handoff socket` + "\n",
		`run   /usr/bin/kvd --arena /run/kv "quote \" and \\ and\nnewline" "ünïcödé"` + "\n",
		"stop  term (SIGKILL after 10.005s), restart on-failure\n",
		"workload cache: session \"luoinit.cache\", handoff pidfd, pid 4242\n",
		"stop  sigstop, restart never\n",
		"dropped  preserve fd: EOPNOTSUPP",
		"workload bare: session \"luoinit.bare\", handoff pidfd, pidfile /run/bare.pid\n",
		"as    uid 0 gid 0 in /\n",
		"stop  term (SIGKILL after 5s), restart never\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	if s != fullManifest().Summary() {
		t.Error("Summary is not deterministic")
	}
	if s := (&Manifest{Version: 1}).Summary(); s != "manifest version 1, generation 0\n0 workloads, 0 fds preserved, 0 dropped\n" {
		t.Errorf("summary of an empty manifest:\n%s", s)
	}
}

// The summary's timing lines appear only for the stamps that are there.
func TestSummaryTiming(t *testing.T) {
	ms := func(n int64) Stamp { return Stamp{MonotonicNS: n * 1e6} }
	for _, tc := range []struct {
		name string
		t    Timing
		want string
	}{
		{"none", Timing{}, ""},
		{"all", Timing{PrepareStart: ms(100), Preserved: ms(106), FirstStopped: ms(104), Reboot: ms(117)},
			"blackout 13ms (first workload stopped to kexec)\npreserving took 6ms\nprepare took 17ms up to the kexec\n"},
		{"no reboot", Timing{PrepareStart: ms(100), Preserved: ms(106), FirstStopped: ms(104)},
			"preserving took 6ms\n"},
		{"not preserved", Timing{PrepareStart: ms(100), Reboot: ms(101)},
			"prepare took 1ms up to the kexec\n"},
		// Without the start, no duration from it is made up.
		{"no start", Timing{Preserved: ms(106), FirstStopped: ms(104), Reboot: ms(117)},
			"blackout 13ms (first workload stopped to kexec)\n"},
	} {
		var b strings.Builder
		tc.t.summary(&b)
		if b.String() != tc.want {
			t.Errorf("%s: got\n%q\nwant\n%q", tc.name, b.String(), tc.want)
		}
	}
}

// The summary's fd table: dropped or kept, from which fd, optional, in
// aligned columns.
func TestSummaryFDs(t *testing.T) {
	for _, tc := range []struct {
		name string
		fds  []FD
		want string
	}{
		{"none", nil, ""},
		{"kept", []FD{{Name: "arena", Token: 1, Kind: "memfd"}},
			"  fd arena  token 1  memfd\n"},
		{"columns", []FD{
			{Name: "a", Token: 12, Kind: "memfd", Number: intp(3)},
			{Name: "longer", Token: 7, Kind: "memfd", Optional: true},
		},
			"  fd a       token 12  memfd  from fd 3\n" +
				"  fd longer  token 7   memfd  optional\n"},
		{"dropped", []FD{
			{Name: "x", Dropped: true, DropReason: "preserve fd: EOPNOTSUPP", Number: intp(8), Optional: true},
			{Name: "y", Dropped: true},
		},
			"  fd x  dropped  preserve fd: EOPNOTSUPP  from fd 8  optional\n" +
				"  fd y  dropped  no reason recorded\n"},
	} {
		var b strings.Builder
		summaryFDs(&b, tc.fds)
		if b.String() != tc.want {
			t.Errorf("%s: got\n%s\nwant\n%s", tc.name, b.String(), tc.want)
		}
	}
}

func TestByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ByteSize
		text string // MarshalText of want
		bad  bool
	}{
		{in: "4096", want: 4096, text: "4KiB"},
		{in: "1000", want: 1000, text: "1000"},
		{in: "512K", want: 512 << 10, text: "512KiB"},
		{in: "64M", want: 64 << 20, text: "64MiB"},
		{in: "64MiB", want: 64 << 20, text: "64MiB"},
		{in: "2G", want: 2 << 30, text: "2GiB"},
		{in: "1536M", want: 1536 << 20, text: "1536MiB"},
		{in: "1TiB", want: 1 << 40, text: "1TiB"},
		{in: "", bad: true},
		{in: "M", bad: true},
		{in: "+5", bad: true},
		{in: "-5", bad: true},
		{in: "5 M", bad: true},
		{in: "5m", bad: true},
		{in: "1.5G", bad: true},
		{in: "8388608T", bad: true}, // 2^63: past int64
	} {
		var b ByteSize
		err := b.UnmarshalText([]byte(tc.in))
		if tc.bad {
			if err == nil {
				t.Errorf("%q: got %d, want an error", tc.in, b)
			}
			continue
		}
		if err != nil || b != tc.want {
			t.Errorf("%q: got %d, %v; want %d", tc.in, b, err, tc.want)
			continue
		}
		text, _ := b.MarshalText()
		if string(text) != tc.text {
			t.Errorf("%q: MarshalText %q, want %q", tc.in, text, tc.text)
		}
		var back ByteSize
		if err := back.UnmarshalText(text); err != nil || back != b {
			t.Errorf("%q: %q reads back as %d, %v", tc.in, text, back, err)
		}
	}
}
