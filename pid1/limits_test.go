package pid1

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRaiseFileLimit: the limit is raised, soft and hard, and getrlimit
// says so; where the hard limit may not be raised (not root, or a
// container), the error names the syscall and EPERM, and the soft limit
// is raised to the hard one all the same.
func TestRaiseFileLimit(t *testing.T) {
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	defer unix.Setrlimit(unix.RLIMIT_NOFILE, &old)
	unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: min(old.Max, 256), Max: old.Max})
	n, err := RaiseFileLimit()
	var now unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &now)
	if now.Cur != n {
		t.Fatalf("returned %d, getrlimit says %d", n, now.Cur)
	}
	if err != nil {
		if !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), "setrlimit(RLIMIT_NOFILE") {
			t.Fatalf("%v, want EPERM from setrlimit", err)
		}
		if now.Cur != old.Max {
			t.Fatalf("soft limit %d after EPERM, want the hard one %d", now.Cur, old.Max)
		}
		t.Logf("hard limit not raised here (%v): soft raised to %d", err, n)
		return
	}
	if now.Max != n || n < 1024 || n > FileLimit {
		t.Fatalf("limit %d/%d after raising to %d", now.Cur, now.Max, n)
	}
}
