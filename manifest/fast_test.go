package manifest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// decodeBoth reads data with the fast path and with the full parser.
func decodeBoth[T any](t testing.TB, data []byte, isManifest bool) (fast, full *T, fastOK bool, fullErr error) {
	fast, full = new(T), new(T)
	fastOK = fastParse(data, fast, isManifest)
	fullErr = fullParse("x.toml", data, full, isManifest)
	return
}

// TestFastPathTakesWhatMarshalWrites: every manifest luoinit writes is
// read by the fast path, and to the same value as the full parser's.
func TestFastPathTakesWhatMarshalWrites(t *testing.T) {
	n, n2 := 7, 8
	cases := map[string]*Manifest{
		"bench (10 x 100 fds)": benchManifestValue(10, 100),
		"one fd":               benchManifestValue(1, 1),
		"everything": {
			Version: Version, Generation: 3, KernelRelease: "7.3.4 \"quoted\" \\ back",
			Written: time.Date(2026, 11, 25, 1, 2, 3, 456789000, time.UTC),
			Timing: Timing{
				PrepareStart: Stamp{MonotonicNS: 100, Realtime: time.Date(2026, 11, 25, 1, 2, 3, 0, time.UTC)},
				Reboot:       Stamp{MonotonicNS: 200},
			},
			Workloads: []Workload{{
				Name: "kv", Argv: []string{"/bin/kv", "--x", "tab\there", "ünï", "\x01ctl"}, Env: []string{"A=b"},
				Dir: "/var", UID: 1000, GID: 1000, Handoff: HandoffPidfd, PID: 42, Stop: StopSigstop,
				StopTimeout: Duration{1500 * time.Millisecond}, Restart: RestartOnFailure, Ready: ReadyNotify,
				Sessions: SessionsRetrieve, FDStoreMax: 9, FDSession: "luoinit.kv",
				FDs: []FD{
					{Name: "a", Number: &n, Token: 1, Kind: "memfd"},
					{Name: "b # not a comment", Number: &n2, Optional: true, Dropped: true, DropReason: "preserve fd: EOPNOTSUPP"},
				},
				OwnedSessions: []OwnedSession{{Name: "vmm.guest", Via: "proc"}},
			}},
			Network: Network{
				Links:  []Link{{Name: "lo", Kind: KindLoopback, Up: true, Addresses: []Address{{CIDR: "127.0.0.1/8", Scope: "host"}}}},
				Routes: []Route{{Dst: "default", Gateway: "127.0.0.2", Dev: "lo", Metric: 5}},
				Rules:  []Rule{{Priority: 100, Family: "inet", Table: 10, Mark: 7}},
			},
		},
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			data, err := m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			fast, full, ok, fullErr := decodeBoth[Manifest](t, data, true)
			if fullErr != nil {
				t.Fatalf("the full parser refuses what Marshal wrote: %v", fullErr)
			}
			if !ok {
				t.Fatalf("the fast path does not take what Marshal wrote:\n%s", data)
			}
			if !reflect.DeepEqual(fast, full) {
				t.Fatalf("fast and full parse differ:\nfast %+v\nfull %+v", fast, full)
			}
		})
	}
}

func benchManifestValue(workloads, fds int) *Manifest {
	m := &Manifest{Version: Version, Generation: 1, KernelRelease: "7.3.4"}
	for w := 0; w < workloads; w++ {
		wl := Workload{Name: fmt.Sprintf("w%d", w), Argv: []string{"/bin/w"}, Handoff: HandoffSocket, FDSession: SessionName(fmt.Sprintf("w%d", w))}
		for f := 0; f < fds; f++ {
			wl.FDs = append(wl.FDs, FD{Name: fmt.Sprintf("fd%03d", f), Token: uint64(f + 1), Kind: "memfd"})
		}
		m.Workloads = append(m.Workloads, wl)
	}
	return m
}

// TestFastPathDeclines: what is outside the subset goes to the full
// parser, which gives the same answer it always did.
func TestFastPathDeclines(t *testing.T) {
	base := "version = 1\ngeneration = 1\nkernel_release = \"k\"\n\n[[workload]]\nname = \"kv\"\nargv = [\"/bin/kv\"]\nuid = 0\ngid = 0\nhandoff = \"socket\"\nsession = \"luoinit.kv\"\n"
	for _, tc := range []struct{ desc, data string }{
		{"literal string", strings.Replace(base, `"k"`, `'k'`, 1)},
		{"inline table", base + "fd = [{name = \"a\"}]\n"},
		{"key twice", base + "uid = 0\n"},
		{"unknown key", base + "colour = \"red\"\n"},
		{"dotted key", base + "a.b = 1\n"},
		{"table twice", base + "[timing]\n[timing]\n"},
		{"plain table for an array of tables", base + "[workload]\n"},
		{"array of tables for a table", base + "[[timing]]\n"},
		{"integer with underscores", strings.Replace(base, "generation = 1", "generation = 1_0", 1)},
		{"leading zero", strings.Replace(base, "generation = 1", "generation = 01", 1)},
		{"negative uid", strings.Replace(base, "uid = 0", "uid = -1", 1)},
		{"uid out of range", strings.Replace(base, "uid = 0", "uid = 4294967296", 1)},
		{"trailing comma", strings.Replace(base, `["/bin/kv"]`, `["/bin/kv",]`, 1)},
		{"multi-line array", strings.Replace(base, `["/bin/kv"]`, "[\n\"/bin/kv\"]", 1)},
		{"bad escape", strings.Replace(base, `"k"`, `"\q"`, 1)},
		{"control character", strings.Replace(base, `"k"`, "\"\x01\"", 1)},
		{"invalid UTF-8", strings.Replace(base, `"k"`, "\"\xff\"", 1)},
		{"local date-time", base + "[timing.reboot]\nmonotonic_ns = 1\nrealtime = 2025-01-01T00:00:00\n"},
		{"newer version", strings.Replace(base, "version = 1", "version = 2", 1)},
		{"invalid manifest (no token)", base + "[[workload.fd]]\nname = \"a\"\n"},
		{"a lone CR ends the last comment", base + "# end\r"},
		{"a lone CR ends the last value", strings.TrimSuffix(base, "\n") + "\r"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, _, ok, fullErr := decodeBoth[Manifest](t, []byte(tc.data), true)
			if ok {
				t.Fatalf("the fast path took it (full parser: %v)", fullErr)
			}
		})
	}
}

// TestFastPathTestdata: the files under testdata and the docs' examples
// read the same both ways.
func TestFastPathTestdata(t *testing.T) {
	for _, f := range []string{"testdata/manifest.toml", "testdata/config.toml"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		isManifest := strings.Contains(filepath.Base(f), "manifest")
		if isManifest {
			agree[Manifest](t, data, true)
		} else {
			agree[Config](t, data, false)
		}
	}
}

// agree fails t if the fast path took data and the full parser disagrees.
func agree[T any](t testing.TB, data []byte, isManifest bool) bool {
	fast, full, ok, fullErr := decodeBoth[T](t, data, isManifest)
	if !ok {
		return false
	}
	if _, limit := scan(data); limit != nil {
		// The limits guard the TOML library's memory; the fast path reads
		// in one pass and needs none: it may take a valid file past them.
		return true
	}
	if fullErr != nil {
		t.Fatalf("the fast path took what the full parser refuses (%v):\n%q", fullErr, data)
	}
	if !reflect.DeepEqual(fast, full) {
		t.Fatalf("fast and full parse differ on %q:\nfast %+v\nfull %+v", data, fast, full)
	}
	return true
}

// FuzzFastPathAgrees: on any input the fast path takes, the full parser
// agrees, value for value.
func FuzzFastPathAgrees(f *testing.F) {
	for _, m := range []*Manifest{benchManifestValue(2, 3), benchManifestValue(1, 1)} {
		b, _ := m.Marshal()
		f.Add(b, true)
	}
	for _, p := range []string{"testdata/manifest.toml", "testdata/config.toml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b, strings.Contains(p, "manifest"))
		}
	}
	f.Add([]byte("version = 1\n[[workload]]\nname = \"a\"\nargv = [\"/a\", \"\\u00e9\"]\nhandoff = \"none\"\n"), false)
	// A control character in a comment: the fast path took it, the
	// library refuses it, as TOML says.
	f.Add([]byte("#\x10\nversion=1\ngeneration=1"), true)
	f.Add([]byte("version=1 #\x7f\ngeneration=1\r\n"), true)
	// A CR with no LF after it at the end of the file: the fast path took
	// it as a line's end, the library refuses a lone CR.
	f.Add([]byte("version=1#\r"), false)
	f.Fuzz(func(t *testing.T, data []byte, isManifest bool) {
		if len(data) > 1<<16 || bytes.Count(data, []byte("[")) > 512 {
			return // the full parser's own limits are tested elsewhere
		}
		if isManifest {
			agree[Manifest](t, data, true)
		} else {
			agree[Config](t, data, false)
		}
	})
}

// TestFastPathTenThousandFDs: one workload of 10,000 fds, past the full
// parser's table limit, is read, and its tokens are all there.
func TestFastPathTenThousandFDs(t *testing.T) {
	data, err := benchManifestValue(1, 10000).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(data)
	if err != nil {
		t.Fatalf("a valid manifest of 10,000 fds: %v", err)
	}
	if n := len(m.Workloads[0].FDs); n != 10000 || m.Workloads[0].FDs[9999].Token != 10000 {
		t.Fatalf("%d fds, the last with token %d", n, m.Workloads[0].FDs[n-1].Token)
	}
}
