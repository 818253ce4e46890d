// Command skips reads `go test -json` on stdin (tests/unit.sh, which is
// `make unit`), prints what go test prints without -v (failures with
// their output, a line for each package), then lists every skipped test
// with its reason, each marked allowed in CI or not (allow.go). A skip is
// otherwise invisible without -v, and a test that skips passes.
//
// It exits 1 when a test or a package failed, and with -ci also when a
// test skipped for a reason allow.go does not list.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// event is one line of go test -json (cmd/test2json); build-output events
// carry the compiler's messages for a package that does not build.
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

type skip struct {
	pkg, test string
	loc       string // file:line of the t.Skip, when it said something
	reason    string
}

// logEntry starts a message of t.Log, t.Skip...: file:line after four
// spaces, at any depth of subtest under -json; the lines continuing it
// have eight, so that a compiler's file:line quoted there starts nothing.
var logEntry = regexp.MustCompile(`^    (\S+\.go:\d+): (.*)$`)

// skipOf finds the reason a test skipped in its output: its last log
// entry, which t.Skip wrote as the test ended, with the lines that
// continue it.
func skipOf(pkg, test string, out []string) skip {
	s := skip{pkg: pkg, test: test}
	var lines []string
	for _, l := range out {
		l = strings.TrimRight(l, "\n")
		if strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP: ") {
			continue
		}
		if m := logEntry.FindStringSubmatch(l); m != nil {
			s.loc, lines = m[1], []string{m[2]}
		} else if lines != nil {
			// Continuation lines are indented twice.
			lines = append(lines, strings.TrimPrefix(l, "        "))
		}
	}
	s.reason = strings.Join(lines, "\n")
	return s
}

type summary struct {
	module string    // stripped from package paths
	out    io.Writer // go test's output, then the list of skips
	output map[[2]string][]string
	skips  []skip
	failed bool
}

func (s *summary) pkg(p string) string {
	if r, ok := strings.CutPrefix(p, s.module+"/"); ok {
		return r
	}
	if p == s.module {
		return "."
	}
	return p
}

func (s *summary) event(e event) {
	key := [2]string{e.Package, e.Test}
	switch {
	case e.Action == "build-output":
		fmt.Fprint(s.out, e.Output)
	case e.Action == "output" && e.Test == "":
		// Without -v, go test does not print PASS for a package.
		if e.Output != "PASS\n" {
			fmt.Fprint(s.out, e.Output)
		}
	case e.Action == "output":
		s.output[key] = append(s.output[key], e.Output)
	case e.Test != "" && e.Action == "skip":
		s.skips = append(s.skips, skipOf(s.pkg(e.Package), e.Test, s.output[key]))
		delete(s.output, key)
	case e.Test != "" && e.Action == "fail":
		s.failed = true
		fmt.Fprint(s.out, strings.Join(s.output[key], ""))
		delete(s.output, key)
	case e.Test != "" && e.Action == "pass":
		delete(s.output, key)
	case e.Test == "" && (e.Action == "pass" || e.Action == "fail" || e.Action == "skip"):
		// The package ended: a test still running when it did (a panic,
		// a timeout) shows what it printed.
		if e.Action == "fail" {
			s.failed = true
		}
		for k, out := range s.output {
			if k[0] == e.Package {
				fmt.Fprint(s.out, strings.Join(out, ""))
				delete(s.output, k)
			}
		}
	}
}

// report lists the skips and returns how many CI does not allow.
func (s *summary) report() (disallowed int) {
	if len(s.skips) == 0 {
		fmt.Fprintln(s.out, "skipped: none")
		return 0
	}
	tests := "tests"
	if len(s.skips) == 1 {
		tests = "test"
	}
	fmt.Fprintf(s.out, "skipped: %d %s\n", len(s.skips), tests)
	for _, sk := range s.skips {
		verdict := "NOT allowed in CI"
		if a := allowedFor(sk); a != nil {
			verdict = "allowed in CI: " + a.why
		} else {
			disallowed++
		}
		reason := sk.reason
		if reason == "" {
			reason = "(no reason given)"
		}
		if sk.loc != "" {
			reason = sk.loc + ": " + reason
		}
		reason = strings.ReplaceAll(reason, "\n", "\n      ")
		fmt.Fprintf(s.out, "  %s %s [%s]\n      %s\n", sk.pkg, sk.test, verdict, reason)
	}
	if disallowed > 0 {
		fmt.Fprintf(s.out, "skipped: %d of them for a reason CI's machine does not allow (tests/skips/allow.go)\n", disallowed)
	}
	return disallowed
}

func main() {
	module := flag.String("module", "", "module path, stripped from package paths")
	ci := flag.Bool("ci", false, "fail on a skip that tests/skips/allow.go does not allow")
	flag.Parse()
	s := &summary{module: *module, out: os.Stdout, output: map[[2]string][]string{}}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	for in.Scan() {
		var e event
		if err := json.Unmarshal(in.Bytes(), &e); err != nil {
			// Not an event: go test's own words, passed on.
			fmt.Println(in.Text())
			continue
		}
		s.event(e)
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "skips: reading go test -json:", err)
		os.Exit(1)
	}
	disallowed := s.report()
	if s.failed {
		os.Exit(1)
	}
	if *ci && disallowed > 0 {
		fmt.Println("skipped: FAIL: CI runs every test that can run on its machine")
		os.Exit(1)
	}
}
