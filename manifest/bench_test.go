package manifest

import (
	"fmt"
	"testing"
)

// benchManifest has 10 workloads of 100 fds each.
func benchManifest(b *testing.B) []byte {
	b.Helper()
	m := &Manifest{Version: Version, Generation: 1, KernelRelease: "7.3.4"}
	for w := 0; w < 10; w++ {
		wl := Workload{Name: fmt.Sprintf("w%d", w), Argv: []string{"/bin/w"}, Handoff: "socket", FDSession: SessionName(fmt.Sprintf("w%d", w))}
		for f := 0; f < 100; f++ {
			wl.FDs = append(wl.FDs, FD{Name: fmt.Sprintf("fd%03d", f), Token: uint64(f + 1), Kind: "memfd"})
		}
		m.Workloads = append(m.Workloads, wl)
	}
	data, err := m.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkParse1000FDs: the restore side's first step after a kexec.
func BenchmarkParse1000FDs(b *testing.B) {
	data := benchManifest(b)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMarshal1000FDs: prepare's manifest write, without the I/O.
func BenchmarkMarshal1000FDs(b *testing.B) {
	m, err := Parse(benchManifest(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParse10000FDs: one workload of 10,000 fds (make perf's largest).
func BenchmarkParse10000FDs(b *testing.B) {
	data, err := benchManifestValue(1, 10000).Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMarshal10000FDs: prepare's manifest write for one workload of
// 10,000 fds.
func BenchmarkMarshal10000FDs(b *testing.B) {
	m := benchManifestValue(1, 10000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParse1000FDsLibrary is BenchmarkParse1000FDs through the TOML
// library alone, without the fast path: what the fast path saves on the
// restore path, next to what it costs (fast.go and its agreement fuzzing).
func BenchmarkParse1000FDsLibrary(b *testing.B) {
	data := benchManifest(b)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var m Manifest
		if err := fullParse("manifest.toml", data, &m, true); err != nil {
			b.Fatal(err)
		}
	}
}
