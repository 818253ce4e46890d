package pid1

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name string
		stat string
		want procStat
		err  string
	}{
		{
			name: "sleeping process",
			stat: "123 (sleep) S 1 123 123 0 -1 4194560 103 0 0 0 0 0 0 0 20 0 1 0 5 1 2\n",
			want: procStat{Pid: 123, Comm: "sleep", State: 'S', PPid: 1, Flags: 4194560},
		},
		{
			name: "comm with spaces and parentheses",
			stat: "77 (a) b (c)) Z 12 77 77 0 -1 4194564 0 0",
			want: procStat{Pid: 77, Comm: "a) b (c)", State: 'Z', PPid: 12, Flags: 4194564},
		},
		{
			name: "kernel thread",
			stat: "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0",
			want: procStat{Pid: 2, Comm: "kthreadd", State: 'S', PPid: 0, Flags: 2129984},
		},
		{name: "no comm", stat: "123 sleep S 1", err: "no (comm)"},
		{name: "short", stat: "123 (sleep) S 1 2", err: "fields after comm"},
		{name: "bad pid", stat: "x (sleep) S 1 1 1 0 -1 0", err: "pid"},
		{name: "bad ppid", stat: "1 (sleep) S y 1 1 0 -1 0", err: "ppid"},
		{name: "bad flags", stat: "1 (sleep) S 1 1 1 0 -1 z", err: "flags"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat(tc.stat)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	if (procStat{Flags: 2129984}).Flags&pfKthread == 0 {
		t.Error("kthreadd's flags lack PF_KTHREAD")
	}
}

// TestUserProcesses reads a made-up /proc: self, kernel threads, dead
// processes, files that are not processes and unreadable stats stay out.
func TestUserProcesses(t *testing.T) {
	root := t.TempDir()
	for pid, stat := range map[string]string{
		"1":    "1 (luoinit) S 0 1 1 0 -1 4194560 0 0",
		"2":    "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0",
		"40":   "40 (kv) S 1 40 40 0 -1 4194560 0 0",
		"41":   "41 (zombie) Z 40 40 40 0 -1 4194564 0 0",
		"42":   "42 (gone) X 1 42 42 0 -1 4194564 0 0",
		"43":   "garbage",
		"self": "1 (luoinit) S 0 1 1 0 -1 4194560 0 0",
	} {
		if err := os.MkdirAll(filepath.Join(root, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, pid, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "44"), 0o755); err != nil { // exited meanwhile: no stat
		t.Fatal(err)
	}
	ps, err := userProcesses(root, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := describeProcs(ps, 10), "40 (kv), 41 (zombie)"; got != want {
		t.Errorf("userProcesses: %s, want %s", got, want)
	}
	if _, err := userProcesses(filepath.Join(root, "none"), 1); err == nil {
		t.Error("no error for a missing /proc")
	}
}

func TestDescribeProcs(t *testing.T) {
	ps := []procStat{{Pid: 1, Comm: "a"}, {Pid: 2, Comm: "b"}, {Pid: 3, Comm: "c"}}
	tests := []struct {
		max  int
		want string
	}{
		{10, "1 (a), 2 (b), 3 (c)"},
		{2, "1 (a), 2 (b), and 1 more"},
	}
	for _, tc := range tests {
		if got := describeProcs(ps, tc.max); got != tc.want {
			t.Errorf("describeProcs(max %d) = %q, want %q", tc.max, got, tc.want)
		}
	}
}
