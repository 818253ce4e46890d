package manifest

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

type fence struct{ lang, body string }

// fences returns the fenced code blocks of a Markdown text.
func fences(md string) []fence {
	var out []fence
	var cur *fence
	for _, line := range strings.SplitAfter(md, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			cur = &fence{lang: strings.TrimPrefix(trimmed, "```")}
		case cur != nil && trimmed == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.body += line
		}
	}
	return out
}

// The examples of docs/manifest.md are what the code reads and writes.
func TestDocExamples(t *testing.T) {
	md, err := os.ReadFile("../docs/manifest.md")
	if err != nil {
		t.Fatal(err)
	}
	var cfg *Config
	var man *Manifest
	var broken, records int
	fs := fences(string(md))
	for i, f := range fs {
		if f.lang != "toml" {
			continue
		}
		switch first, _, _ := strings.Cut(f.body, "\n"); {
		case strings.HasPrefix(first, "# luoinit config"):
			if cfg, err = ParseConfig([]byte(f.body)); err != nil {
				t.Errorf("the config example: %v", err)
			}
		case strings.HasPrefix(first, "# luoinit manifest"):
			if man, err = Parse([]byte(f.body)); err != nil {
				t.Fatalf("the manifest example: %v", err)
			}
			b, err := man.Marshal()
			if err != nil || string(b) != f.body {
				t.Errorf("the manifest example is not what Marshal writes (%v):\n%s", err, b)
			}
		case strings.HasPrefix(first, "# luoinit freeze record"):
			records++
			r, err := ParseRecord([]byte(f.body))
			if err != nil {
				t.Fatalf("the freeze record example: %v", err)
			}
			b, err := MarshalRecord(r)
			if err != nil || string(b) != strings.SplitN(f.body, "\n", 2)[1] {
				t.Errorf("the freeze record example is not what MarshalRecord writes (%v):\n%s", err, b)
			}
		case strings.HasPrefix(first, "# a broken config"):
			broken++
			_, err := ParseConfig([]byte(f.body))
			if i+1 >= len(fs) || fs[i+1].lang != "text" {
				t.Fatal("the broken config is not followed by its errors")
			}
			if want := strings.TrimSuffix(fs[i+1].body, "\n"); err == nil || err.Error() != want {
				t.Errorf("the broken config's errors:\n%v\nthe docs show:\n%s", err, want)
			}
		default:
			t.Errorf("a toml example of unknown kind: %q", first)
		}
	}
	if cfg == nil || man == nil || broken != 1 || records != 1 {
		t.Fatalf("examples found: config %v, manifest %v, broken %d, freeze records %d", cfg != nil, man != nil, broken, records)
	}

	// The manifest is the config plus what preservation produced.
	ws := make([]Workload, len(man.Workloads))
	for i, w := range man.Workloads {
		w.FDSession, w.OwnedSessions = "", nil
		w.FDs = append([]FD(nil), w.FDs...)
		for j := range w.FDs {
			fd := &w.FDs[j]
			fd.Token, fd.Kind, fd.Dropped, fd.DropReason = 0, "", false, ""
		}
		ws[i] = w
	}
	if !reflect.DeepEqual(ws, cfg.Workloads) {
		t.Errorf("the manifest example does not hold the config example's workloads:\n%+v\n%+v", ws, cfg.Workloads)
	}

	// Every key is described.
	var keys func(t reflect.Type)
	keys = func(typ reflect.Type) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			key := tomlKey(f)
			described := false
			for _, form := range []string{"`" + key + "`", "`[" + key + "]`", "`[[" + key + "]]`", "." + key + "]]`"} {
				described = described || strings.Contains(string(md), form)
			}
			if !described {
				t.Errorf("docs/manifest.md does not describe `%s`", key)
			}
			ft := f.Type
			if ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft != timeType && ft != reflect.TypeFor[Duration]() {
				keys(ft)
			}
		}
	}
	keys(reflect.TypeFor[Manifest]())
}

// Every complete config in the other docs (a TOML block with version =
// 1 and a [[workload]]) is one luoinit accepts: a stranger copies them.
func TestOtherDocsConfigs(t *testing.T) {
	docs, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, "../README.md")
	n := 0
	for _, doc := range docs {
		if filepath.Base(doc) == "manifest.md" {
			continue // TestDocExamples
		}
		md, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fences(string(md)) {
			if f.lang != "toml" || !strings.Contains(f.body, "version = 1") || !strings.Contains(f.body, "[[workload]]") {
				continue
			}
			n++
			if _, err := ParseConfig([]byte(f.body)); err != nil {
				t.Errorf("%s: a config example is refused: %v\n%s", doc, err, f.body)
			}
		}
	}
	if n == 0 {
		t.Fatal("no config examples found in docs/*.md and README.md")
	}
	t.Logf("%d config examples accepted", n)
}
