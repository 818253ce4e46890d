package tests

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestFuzzScriptFailsOnlyOnFindings runs tests/fuzz.sh on commands that
// print what go test -fuzz prints and exit as it does: the coordinator's
// bare deadline passes, saying so; a finding fails, though the deadline
// is in its output too.
func TestFuzzScriptFailsOnlyOnFindings(t *testing.T) {
	const (
		deadline = "fuzz: elapsed: 10s, execs: 81920 (8000/sec), new interesting: 0 (total: 12)\n" +
			"--- FAIL: FuzzParseMarker (10.02s)\n    context deadline exceeded\nFAIL\nexit status 1\nFAIL\tm/tests/vm\t10.1s\n"
		said = "not a finding: the run ended on the fuzzing coordinator's own -fuzztime deadline"
	)
	for _, tc := range []struct {
		desc   string
		out    string
		write  bool // a failing input under testdata/fuzz
		status int
		pass   bool
	}{
		{"passed", "PASS\nok  \tm/tests/vm\t10.1s\n", false, 0, true},
		{"the coordinator's deadline", deadline, false, 1, true},
		{"the deadline, an input written", deadline, true, 1, false},
		{"the deadline and a panic", "panic: boom\n" + deadline, false, 1, false},
		{"a finding", "--- FAIL: FuzzParseMarker (0.31s)\n    --- FAIL: FuzzParseMarker (0.00s)\n        vm_test.go:120: boom\n\n" +
			"    Failing input written to testdata/fuzz/FuzzParseMarker/0123\n    To re-run:\n    go test -run=FuzzParseMarker/0123\nFAIL\n", true, 1, false},
		{"the target's own deadline", "--- FAIL: FuzzParseMarker (10.02s)\n    vm_test.go:120: context deadline exceeded\nFAIL\n", false, 1, false},
		{"a build error", "vm_test.go:3:1: syntax error\nFAIL\tm/tests/vm [build failed]\n", false, 1, false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			pkg := t.TempDir()
			script := `printf '%s' "$OUT"; if [ -n "$WRITE" ]; then mkdir -p "$0/testdata/fuzz/FuzzParseMarker" && echo x >"$0/testdata/fuzz/FuzzParseMarker/0123"; fi; exit "$STATUS"`
			cmd := exec.Command("./fuzz.sh", "sh", "-c", script, pkg)
			cmd.Env = append(os.Environ(), "OUT="+tc.out, "STATUS="+strconv.Itoa(tc.status))
			if tc.write {
				cmd.Env = append(cmd.Env, "WRITE=1")
			}
			out, err := cmd.CombinedOutput()
			if pass := err == nil; pass != tc.pass {
				t.Errorf("fuzz.sh passed %v, want %v: %v\n%s", pass, tc.pass, err, out)
			}
			if !strings.HasPrefix(string(out), tc.out) {
				t.Errorf("go test's output not passed on:\n%s", out)
			}
			if got := strings.Contains(string(out), said); got != (tc.status != 0 && tc.pass) {
				t.Errorf("says it was the coordinator's deadline: %v\n%s", got, out)
			}
		})
	}
}
