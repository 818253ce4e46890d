package manifest

import (
	"strings"
	"testing"
)

func TestIndexLines(t *testing.T) {
	src := "\ufeff" + `# comment [[workload]] name = 1
version = 1
"quoted.key" = 2
dotted.sub . key = 3

[timing.reboot]
monotonic_ns = 5 # [[workload]]
[[workload]]
name = """
[[workload]]
name = 'not a key'
"""
argv = [
  "/bin/x", # ]
  '''a
b''',
  "c\"]",
]
env = ['=', "\\"] ; fd = [1
[[workload.fd]]
name = "a" # after
[[ "workload" . fd ]]
name = "b"
[[workload]]
fds = [ { name = "c", number = 3 },
       { name = "d" } ]
when = 1979-05-27 07:32:00Z
dates = [1979-05-27 07:32:00Z, "k"]
x = { a = [ [1, 2], { b = 3 } ] }
[[workload.fd]]
name = 'e'
[workload.fd.sub]
k = 1
[[other]]
[[workload]]
[[workload.fd]]
name = "f"
`
	ix := indexLines([]byte(src))
	for path, line := range map[string]int{
		"version":                    2,
		`"quoted.key"`:               3,
		"dotted":                     4,
		"dotted.sub":                 4,
		"dotted.sub.key":             4,
		"timing":                     6,
		"timing.reboot":              6,
		"timing.reboot.monotonic_ns": 7,
		"workload":                   8,
		"workload[0]":                8,
		"workload[0].name":           9,
		"workload[0].argv":           13,
		"workload[0].argv[0]":        14,
		"workload[0].argv[1]":        15,
		"workload[0].argv[2]":        17,
		"workload[0].env":            19,
		"workload[0].env[1]":         19,
		"workload[0].fd":             20,
		"workload[0].fd[0]":          20,
		"workload[0].fd[0].name":     21,
		"workload[0].fd[1]":          22,
		"workload[0].fd[1].name":     23,
		"workload[1]":                24,
		"workload[1].fds":            25,
		"workload[1].fds[0].name":    25,
		"workload[1].fds[0].number":  25,
		"workload[1].fds[1].name":    26,
		"workload[1].dates[1]":       28,
		"workload[1].when":           27,
		"workload[1].x.a[0][1]":      29,
		"workload[1].x.a[1].b":       29,
		"workload[1].fd[0]":          30,
		"workload[1].fd[0].name":     31,
		"workload[1].fd[0].sub.k":    33,
		"other[0]":                   34,
		"workload[2]":                35,
		"workload[2].fd[0]":          36,
		"workload[2].fd[0].name":     37,
	} {
		if got := ix[path]; got != line {
			t.Errorf("%s: line %d, want %d", path, got, line)
		}
	}
	for _, path := range []string{"workload[3]", "workload[0].fd[2]", "workload[0].name[0]", "workload[1].when[0]", "workload[1].07:32:00Z", "workload[1].dates[2]"} {
		if l, ok := ix[path]; ok {
			t.Errorf("%s recorded at line %d: there is no such thing", path, l)
		}
	}
}

func TestFindLine(t *testing.T) {
	ix := lineIndex{"workload[1]": 7, "workload[1].fd[0]": 9, "workload[1].fd[0].token": 11, `a."b.c[0]"`: 3, "a": 2}
	for path, want := range map[string]int{
		"workload[1].fd[0].token": 11,
		"workload[1].fd[0].kind":  9,
		"workload[1].fd[2].kind":  7,
		"workload[1].fd":          7,
		"workload[0].name":        0,
		`a."b.c[0]"`:              3,
		`a."b.c[0]".d`:            3,
		`a."b.c[1]".d`:            2,
		`a."b\".c".d`:             2,
		"":                        0,
	} {
		if got := ix.find(path); got != want {
			t.Errorf("find(%s) = %d, want %d", path, got, want)
		}
	}
}

func TestIndexLinesEscapes(t *testing.T) {
	ix := indexLines([]byte("a = 1\n\"k\\u0041\\U0001F600\\x21\\t\" = 1\n'k\\u0041' = 2\n"))
	ix2 := indexLines([]byte("a = [\"\"\"x\"\"\"\"\", '''y''''', 2]\n"))
	if _, ok := ix2["a[3]"]; ok || ix2["a[2]"] != 1 {
		t.Errorf("quotes after a multi-line string's closing: %v", ix2)
	}
	for path, line := range map[string]int{`"kA😀!\t"`: 2, `"k\\u0041"`: 3} {
		if got := ix[path]; got != line {
			t.Errorf("%s: line %d, want %d (index %v)", path, got, line, ix)
		}
	}
}

// Inputs that are not TOML end the scan without a panic or a hang.
func TestIndexLinesBroken(t *testing.T) {
	for _, src := range []string{
		"", "[", "[[", "[[a", "[[a]", "a", "a =", "a = [", "a = {", `a = "`, `a = """`, "a = '''", `a = "\`, `a = "\u12`,
		"\x00", "=\n=", "[a.]", "[.]", `["\`, "a = [[[[[[[[[[", strings.Repeat("[", 10000), strings.Repeat("a = {", 1000),
		strings.Repeat("a.", 10000) + "b = 1", "a = 1979-05-27 ", "a = [1979-05-27 07:00:00, ]", "\n\n\r\r\t",
	} {
		indexLines([]byte(src))
	}
	ix := indexLines([]byte("x = [\n\n1, 2\n"))
	if ix["x[1]"] != 3 {
		t.Errorf("unclosed array: %v", ix)
	}
}
