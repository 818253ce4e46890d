package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// A go test -json stream as go test writes it: a failing subtest, a skip
// after other output with a reason on two lines, an allowed skip, a
// package without tests.
const stream = `{"Action":"start","Package":"m/a"}
{"Action":"run","Package":"m/a","Test":"TestA"}
{"Action":"output","Package":"m/a","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"run","Package":"m/a","Test":"TestA/sub"}
{"Action":"output","Package":"m/a","Test":"TestA/sub","Output":"=== RUN   TestA/sub\n"}
{"Action":"output","Package":"m/a","Test":"TestA/sub","Output":"    a_test.go:5: boom\n"}
{"Action":"output","Package":"m/a","Test":"TestA/sub","Output":"--- FAIL: TestA/sub (0.00s)\n"}
{"Action":"fail","Package":"m/a","Test":"TestA/sub"}
{"Action":"run","Package":"m/a","Test":"TestA/skip"}
{"Action":"output","Package":"m/a","Test":"TestA/skip","Output":"=== RUN   TestA/skip\n"}
{"Action":"output","Package":"m/a","Test":"TestA/skip","Output":"    a_test.go:6: noise\n"}
{"Action":"output","Package":"m/a","Test":"TestA/skip","Output":"    a_test.go:7: cannot build a test program: exit status 1\n"}
{"Action":"output","Package":"m/a","Test":"TestA/skip","Output":"        ./x.go:1: syntax error\n"}
{"Action":"output","Package":"m/a","Test":"TestA/skip","Output":"--- SKIP: TestA/skip (0.00s)\n"}
{"Action":"skip","Package":"m/a","Test":"TestA/skip"}
{"Action":"output","Package":"m/a","Test":"TestA","Output":"--- FAIL: TestA (0.00s)\n"}
{"Action":"fail","Package":"m/a","Test":"TestA"}
{"Action":"output","Package":"m/a","Output":"FAIL\n"}
{"Action":"output","Package":"m/a","Output":"FAIL\tm/a\t0.004s\n"}
{"Action":"fail","Package":"m/a"}
{"Action":"run","Package":"m/preflight","Test":"TestWriteTestdata"}
{"Action":"output","Package":"m/preflight","Test":"TestWriteTestdata","Output":"    image_test.go:276: set LUOINIT_WRITE_TESTDATA=1 to rewrite testdata\n"}
{"Action":"skip","Package":"m/preflight","Test":"TestWriteTestdata"}
{"Action":"run","Package":"m/preflight","Test":"TestQuiet"}
{"Action":"output","Package":"m/preflight","Test":"TestQuiet","Output":"    image_test.go:9: says nothing when it passes\n"}
{"Action":"pass","Package":"m/preflight","Test":"TestQuiet"}
{"Action":"output","Package":"m/preflight","Output":"PASS\n"}
{"Action":"output","Package":"m/preflight","Output":"ok  \tm/preflight\t0.1s\n"}
{"Action":"pass","Package":"m/preflight"}
{"Action":"output","Package":"m/cmd","Output":"?   \tm/cmd\t[no test files]\n"}
{"Action":"skip","Package":"m/cmd"}
`

func TestSummary(t *testing.T) {
	var out strings.Builder
	s := &summary{module: "m", out: &out, output: map[[2]string][]string{}}
	in := bufio.NewScanner(strings.NewReader(stream))
	for in.Scan() {
		var e event
		if err := json.Unmarshal(in.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		s.event(e)
	}
	if n := s.report(); n != 1 {
		t.Errorf("%d skips not allowed, want 1", n)
	}
	if !s.failed {
		t.Error("a failed test not counted")
	}
	want := `=== RUN   TestA/sub
    a_test.go:5: boom
--- FAIL: TestA/sub (0.00s)
=== RUN   TestA
--- FAIL: TestA (0.00s)
FAIL
FAIL	m/a	0.004s
ok  	m/preflight	0.1s
?   	m/cmd	[no test files]
skipped: 2 tests
  a TestA/skip [NOT allowed in CI]
      a_test.go:7: cannot build a test program: exit status 1
      ./x.go:1: syntax error
  preflight TestWriteTestdata [allowed in CI: writes testdata on request, checks nothing]
      image_test.go:276: set LUOINIT_WRITE_TESTDATA=1 to rewrite testdata
skipped: 1 of them for a reason CI's machine does not allow (tests/skips/allow.go)
`
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}

// Every entry of the allow-list names a test that is there: an entry
// left behind by a renamed test would allow nothing, silently.
func TestAllowedTestsExist(t *testing.T) {
	for _, a := range allowed {
		files, _ := filepath.Glob(filepath.Join("..", "..", a.pkg, "*_test.go"))
		decl := regexp.MustCompile(`(?m)^func ` + regexp.QuoteMeta(a.test) + `\(t \*testing\.T\)`)
		found := false
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			found = found || decl.Match(b)
		}
		if !found {
			t.Errorf("allow.go: no %s in ./%s/", a.test, a.pkg)
		}
	}
}
