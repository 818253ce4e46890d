package prepare

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadPIDFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		content string
		pid     int
		err     string
	}{
		{"42\n", 42, ""},
		{"  4194304  \n", 4194304, ""},
		{"4294967297\n", 0, `holds "4294967297", not a pid (1 to 4194304)`},
		{"4194305", 0, "not a pid"},
		{"0\n", 0, "not a pid"},
		{"-1\n", 0, "not a pid"},
		{"", 0, `holds "", not a pid`},
		{"12 13\n", 0, "not a pid"},
		{strings.Repeat("1", 100), 0, "more than 64 bytes, not a pid"},
	} {
		path := filepath.Join(dir, "pid")
		if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		pid, err := readPIDFile(path)
		switch {
		case tc.err == "" && (err != nil || pid != tc.pid):
			t.Errorf("%q: %d, %v; want %d", tc.content, pid, err, tc.pid)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: %d, %v; want an error with %q", tc.content, pid, err, tc.err)
		}
	}
	// An endless file is refused at once.
	if _, err := readPIDFile("/dev/zero"); err == nil || !strings.Contains(err.Error(), "more than 64 bytes") {
		t.Errorf("/dev/zero: %v", err)
	}
	if _, err := readPIDFile(filepath.Join(dir, "absent")); err == nil || !os.IsNotExist(err) && !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing pidfile: %v", err)
	}
}
