package proctree

import (
	"os"
	"os/exec"
	"testing"
)

func TestParseParent(t *testing.T) {
	for _, tc := range []struct {
		stat string
		want int
		ok   bool
	}{
		{"41 (kvcache) S 1 41 41 0", 1, true},
		{"42 (a) b) (c) R 17 42", 17, true}, // the command name may hold ") ("
		{"43 (x S 1", 0, false},
		{"44 (x) S", 0, false},
		{"45 (x) S notanumber", 0, false},
	} {
		got, err := parseParent(0, tc.stat)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseParent(%q) = %d, %v; want %d, ok %v", tc.stat, got, err, tc.want, tc.ok)
		}
	}
}

func TestDescendant(t *testing.T) {
	child := exec.Command("sleep", "5")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	self, parent, kid := os.Getpid(), os.Getppid(), child.Process.Pid
	for _, tc := range []struct {
		pid, ancestor int
		want          bool
	}{
		{self, self, true},
		{kid, self, true},
		{kid, parent, true},
		{self, kid, false},
		{parent, self, false},
		{kid, 0, false},
		{0, self, false},
		{1 << 30, self, false}, // no such process
	} {
		if got := Descendant(tc.pid, tc.ancestor); got != tc.want {
			t.Errorf("Descendant(%d, %d) = %v, want %v", tc.pid, tc.ancestor, got, tc.want)
		}
	}
}
