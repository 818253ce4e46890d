package main

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
)

// FuzzOpenArena opens arbitrary bytes as an arena: it must never panic,
// must refuse with a *CorruptError naming an offset inside the arena, and
// what it opens must be a consistent store that reopens as it was.
func FuzzOpenArena(f *testing.F) {
	mem, _ := sample(f)
	f.Add(slices.Clone(mem))
	f.Add(make([]byte, 512))
	f.Add([]byte("KVC1"))
	for _, size := range []int{minArenaSize, 600} {
		st := newStore(f, size)
		f.Add(slices.Clone(st.mem)) // empty
		st.Set("k", "v")
		st.Set("key-00001", strings.Repeat("x", 100))
		st.Set("k", "w")
		st.Delete("key-00001")
		f.Add(slices.Clone(st.mem))
		torn := slices.Clone(st.mem)
		torn[hdrUsed] ^= 1 // first header copy torn
		f.Add(torn)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		mem := slices.Clone(data)
		st, err := OpenArena(mem)
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T) is not a *CorruptError", err, err)
			}
			if ce.Offset < 0 || (ce.Offset >= int64(len(mem)) && ce.Offset != 0) {
				t.Fatalf("offset %d is outside the %d-byte arena: %v", ce.Offset, len(mem), err)
			}
			if !slices.Equal(mem, data) {
				t.Fatal("a refused open wrote into the arena")
			}
			return
		}
		s := st.Stats()
		if s.Size != int64(len(mem)) || s.Used < dataStart || s.Used > s.Size || !s.Restored || s.Generation == 0 {
			t.Fatalf("opened with stats %+v for %d bytes", s, len(mem))
		}
		got := map[string]string{}
		for _, k := range st.Keys() {
			v, ok := st.Get(k)
			if !ok || len(k) == 0 || len(k) > maxKeyLen || len(v) > maxValueLen {
				t.Fatalf("key %q: value of %d bytes, found %v", k, len(v), ok)
			}
			got[k] = v
		}
		if len(got) != s.Entries || st.Count() != s.Entries {
			t.Fatalf("%d keys listed, Count %d, Entries %d", len(got), st.Count(), s.Entries)
		}
		// What it committed reopens to the same store, one generation on.
		again, err := OpenArena(mem)
		if err != nil {
			t.Fatalf("an arena that opened does not reopen: %v", err)
		}
		if g := contents(t, again); !maps.Equal(g, got) {
			t.Fatalf("reopened: %d keys, first open: %d", len(g), len(got))
		}
		if a := again.Stats(); a.Generation != s.Generation+1 || a.Used != s.Used {
			t.Fatalf("reopened stats %+v after %+v", a, s)
		}
		// It takes writes (or says it is full), and they reopen too.
		err = again.Set("fuzz", "value")
		if err != nil && !errors.Is(err, ErrArenaFull) {
			t.Fatalf("Set after open: %v", err)
		}
		if err == nil {
			got["fuzz"] = "value"
		}
		third, err := OpenArena(mem)
		if err != nil {
			t.Fatalf("reopen after a write: %v", err)
		}
		if g := contents(t, third); !maps.Equal(g, got) {
			t.Fatalf("after a write: %d keys, want %d", len(g), len(got))
		}
	})
}

// FuzzParseRequest parses arbitrary lines: it must never panic, and a
// request it accepts holds only what the protocol carries and prints back
// as a line that parses to the same request.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"SET k v", "GET k", "DEL k", "COUNT", "STATS", "PUSH", "QUIT", "set k v\r", "get k",
		"", "SET", "SET k", "SET  k v", "SET k v w", "GET k\x00", "SET k\tv x", "COUNT 1",
		"SET " + strings.Repeat("k", 256) + " v", "\r", "\r\r", "GET é",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		req, err := ParseRequest(line)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		if _, ok := opNames[req.Op]; !ok {
			t.Fatalf("unknown op %d accepted", req.Op)
		}
		for _, tok := range []struct {
			what, s string
			limit   int
			used    bool
		}{
			{"key", req.Key, maxKeyLen, req.Op == OpSet || req.Op == OpGet || req.Op == OpDel},
			{"value", req.Value, maxValueLen, req.Op == OpSet},
		} {
			if !tok.used {
				if tok.s != "" {
					t.Fatalf("%v request with a %s %q", req.Op, tok.what, tok.s)
				}
				continue
			}
			if len(tok.s) == 0 || len(tok.s) > tok.limit || badByte(tok.s) >= 0 {
				t.Fatalf("accepted %s %q", tok.what, tok.s)
			}
		}
		again, err := ParseRequest([]byte(req.String()))
		if err != nil || again != req {
			t.Fatalf("%q parsed to %+v, printed as %q, which parses to %+v, %v", line, req, req.String(), again, err)
		}
	})
}
