package kcmdline

import (
	"fmt"
	"strings"
	"testing"
)

func show(ps []Param) string {
	var b []string
	for _, p := range ps {
		if p.HasValue {
			b = append(b, fmt.Sprintf("%s=%s", p.Name, p.Value))
		} else {
			b = append(b, p.Name)
		}
	}
	return strings.Join(b, "|")
}

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		cmdline string
		want    string // Name=Value joined by |
		raw     string // Raw joined by |, "" to skip
		init    string
		hasInit bool
	}{
		{cmdline: "", want: ""},
		{cmdline: "  a=1   b \n", want: "a=1|b", raw: "a=1|b"},
		{cmdline: `a="x y" b`, want: "a=x y|b", raw: `a="x y"|b`},
		{cmdline: `"a=x y" b`, want: "a=x y|b", raw: `"a=x y"|b`},
		{cmdline: `a="unterminated b`, want: "a=unterminated b", raw: `a="unterminated b`},
		{cmdline: `"quoted" x=`, want: "quoted|x="},
		{cmdline: `a=b=c`, want: "a=b=c"},
		{cmdline: "a\tb\vc\fd\re", want: "a|b|c|d|e"},
		{cmdline: "quiet -- single  x=1", want: "quiet", init: "single  x=1", hasInit: true},
		{cmdline: "quiet --", want: "quiet", hasInit: true},
		{cmdline: `quiet "--" x`, want: "quiet", init: "x", hasInit: true},
		{cmdline: "quiet --=1 -- x", want: "quiet|--=1", init: "x", hasInit: true},
		{cmdline: `foo="a -- b" c`, want: "foo=a -- b|c"},
	} {
		ps, init, has := Split(tc.cmdline)
		if got := show(ps); got != tc.want || init != tc.init || has != tc.hasInit {
			t.Errorf("Split(%q) = %q, %q, %v; want %q, %q, %v", tc.cmdline, got, init, has, tc.want, tc.init, tc.hasInit)
		}
		if tc.raw != "" {
			var raw []string
			for _, p := range ps {
				raw = append(raw, p.Raw)
			}
			if got := strings.Join(raw, "|"); got != tc.raw {
				t.Errorf("Split(%q) raw = %q, want %q", tc.cmdline, got, tc.raw)
			}
		}
	}
}

func TestCut(t *testing.T) {
	for _, tc := range []struct {
		cmdline, kernel, init string
		hasInit               bool
	}{
		{"a b", "a b", "", false},
		{"a  --  b c", "a", "b c", true},
		{`a="x -- y" -- b`, `a="x -- y"`, "b", true},
		{"-- b", "", "b", true},
	} {
		k, i, h := Cut(tc.cmdline)
		if k != tc.kernel || i != tc.init || h != tc.hasInit {
			t.Errorf("Cut(%q) = %q, %q, %v; want %q, %q, %v", tc.cmdline, k, i, h, tc.kernel, tc.init, tc.hasInit)
		}
	}
}

func TestLast(t *testing.T) {
	for _, tc := range []struct {
		cmdline, name, value string
		set                  bool
	}{
		{"", "kho", "", false},
		{"kho=on", "kho", "on", true},
		{"kho=on kho=off", "kho", "off", true}, // the last one counts
		{"kho", "kho", "", true},
		{"xkho=on khox=on", "kho", "", false},
		{"a -- kho=on", "kho", "", false}, // init's argument
		{`kho="on"`, "kho", "on", true},
		{`"kho=on"`, "kho", "on", true},
		{`foo="kho=on"`, "kho", "", false},
		{`foo="a kho=on b"`, "kho", "", false},
	} {
		v, set := Last(tc.cmdline, tc.name)
		if v != tc.value || set != tc.set {
			t.Errorf("Last(%q, %q) = %q, %v; want %q, %v", tc.cmdline, tc.name, v, set, tc.value, tc.set)
		}
	}
}

// FuzzSplit: any string splits without a panic; every Raw is a piece of
// the input, and the parameters and init's part never say more than the
// input did.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{"", `a="x y" b`, `"a=x y"`, "a -- b", `"`, `""`, `"--"`, "\x00=\"", "a=\"b\" c=\"d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, init, has := Split(s)
		n := 0
		for _, p := range ps {
			if !strings.Contains(s, p.Raw) || p.Raw == "" && p.Name != "" {
				t.Fatalf("Raw %q not in %q", p.Raw, s)
			}
			if len(p.Name)+len(p.Value) > len(p.Raw) {
				t.Fatalf("%+v longer than written", p)
			}
			n += len(p.Raw)
		}
		if n+len(init) > len(s) || !strings.HasSuffix(s, init) || (!has && init != "") {
			t.Fatalf("Split(%q) = %d bytes of parameters, init %q, %v", s, n, init, has)
		}
		k, i, h := Cut(s)
		if i != init || h != has || len(k) > len(s) || !strings.HasPrefix(s, k) {
			t.Fatalf("Cut(%q) = %q, %q, %v; Split gave init %q, %v", s, k, i, h, init, has)
		}
	})
}
