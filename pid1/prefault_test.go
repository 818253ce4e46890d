package pid1

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPrefault: the read-only segments of the test binary are populated,
// several megabytes of them, or the kernel is too old to know the advice.
func TestPrefault(t *testing.T) {
	n, err := Prefault()
	if errors.Is(err, unix.EINVAL) {
		t.Skipf("MADV_POPULATE_READ unknown to this kernel: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if n < 1<<20 {
		t.Fatalf("populated %d bytes, want the code and constants (megabytes)", n)
	}
}
