package preflight

import (
	"bytes"
	"io"
	"math/rand"
	"os/exec"
	"testing"
)

// TestZstdKernelSettings: a stream made as the kernel's build makes its
// zstd payload (zstd -22 --ultra: a large window) decompresses to the
// same bytes through zstdReader, read in small and large pieces.
func TestZstdKernelSettings(t *testing.T) {
	if _, err := exec.LookPath("zstd"); err != nil {
		t.Skip("no zstd command (tests/deps.sh installs it)")
	}
	rng := rand.New(rand.NewSource(1))
	plain := make([]byte, 3<<20)
	const alphabet = "luo-v5 kho-v4 \x00abcdefgh"
	for i := range plain {
		plain[i] = alphabet[rng.Intn(len(alphabet))]
	}
	cmd := exec.Command("zstd", "-19", "--ultra", "-22", "-c")
	cmd.Stdin = bytes.NewReader(plain)
	z, err := cmd.Output()
	if err != nil {
		t.Fatalf("zstd: %v", err)
	}
	for _, chunk := range []int{1, 4093, 1 << 20} {
		r, err := zstdReader(io.NewSectionReader(bytes.NewReader(z), 0, int64(len(z))), uint64(len(plain)))
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		buf := make([]byte, chunk)
		if _, err := io.CopyBuffer(struct{ io.Writer }{&got}, struct{ io.Reader }{r}, buf); err != nil {
			t.Fatalf("chunk %d: %v", chunk, err)
		}
		if !bytes.Equal(got.Bytes(), plain) {
			t.Fatalf("chunk %d: %d bytes back, differ from the %d put in", chunk, got.Len(), len(plain))
		}
	}
	// Not zstd: an error, not garbage.
	r, err := zstdReader(io.NewSectionReader(bytes.NewReader([]byte("not a zstd frame at all")), 0, 23), 100)
	if err == nil {
		_, err = io.ReadAll(r)
	}
	if err == nil {
		t.Fatal("a stream that is not zstd read without an error")
	}
}

// TestConcatReadAt: reads across, at and past the parts' edges.
func TestConcatReadAt(t *testing.T) {
	c := concat{bytes.NewReader([]byte("abc")), io.NewSectionReader(bytes.NewReader([]byte("xxdefxx")), 2, 3), bytes.NewReader(nil), bytes.NewReader([]byte("gh"))}
	for _, tc := range []struct {
		off  int64
		n    int
		want string
		eof  bool
	}{
		{0, 8, "abcdefgh", false},
		{0, 3, "abc", false},
		{2, 3, "cde", false},
		{3, 3, "def", false},
		{5, 3, "fgh", false},
		{6, 5, "gh", true},
		{8, 1, "", true},
		{20, 1, "", true},
	} {
		p := make([]byte, tc.n)
		n, err := c.ReadAt(p, tc.off)
		if string(p[:n]) != tc.want || (err == io.EOF) != tc.eof || (err != nil && err != io.EOF) {
			t.Errorf("ReadAt(%d bytes at %d) = %q, %v; want %q, EOF %v", tc.n, tc.off, p[:n], err, tc.want, tc.eof)
		}
	}
}
