package preflight

import "testing"

// A marker split across writes, at every point, is found; one byte short
// of a marker is not.
func TestMarkerScannerSplit(t *testing.T) {
	const m = "ZSTD decompressor ran out of memory"
	text := "\x00abc" + m + "\x00def"
	for cut := 0; cut <= len(text); cut++ {
		s := newMarkerScanner()
		s.Write([]byte(text[:cut]))
		s.Write([]byte(text[cut:]))
		if !s.found[m] {
			t.Fatalf("split at %d: marker not found", cut)
		}
	}
	s := newMarkerScanner()
	s.Write([]byte(m[:len(m)-1]))
	if s.found[m] {
		t.Fatal("found a marker one byte short")
	}
	// lz4's marker ends at the comma and its NUL; lzo's goes on.
	s = newMarkerScanner()
	s.Write([]byte("Both input pointer and fill function provided, don't know what to do\x00"))
	if lz4 := formatByName("lz4").marker; s.found[lz4] {
		t.Error("lzo's message taken for lz4's decompressor")
	}
}
