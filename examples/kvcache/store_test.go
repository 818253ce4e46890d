package main

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
)

// newStore makes a store over a fresh arena of size bytes in Go memory.
func newStore(t testing.TB, size int) *Store {
	t.Helper()
	st, err := CreateArena(make([]byte, size))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// contents is every key of st with its value.
func contents(t testing.TB, st *Store) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, k := range st.Keys() {
		v, ok := st.Get(k)
		if !ok {
			t.Fatalf("key %q listed but Get finds nothing", k)
		}
		m[k] = v
	}
	return m
}

func TestStoreOperations(t *testing.T) {
	type step struct {
		op         string // set, get, del
		key, value string
		found      bool // get: the key is there; del: it was there
		count      int  // Count after the step
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"set then get", []step{
			{op: "set", key: "a", value: "1", count: 1},
			{op: "get", key: "a", value: "1", found: true, count: 1},
		}},
		{"get a missing key", []step{
			{op: "set", key: "a", value: "1", count: 1},
			{op: "get", key: "b", count: 1},
		}},
		{"overwrite", []step{
			{op: "set", key: "a", value: "1", count: 1},
			{op: "set", key: "a", value: "second, longer value", count: 1},
			{op: "get", key: "a", value: "second, longer value", found: true, count: 1},
			{op: "set", key: "a", value: "3", count: 1},
			{op: "get", key: "a", value: "3", found: true, count: 1},
		}},
		{"delete", []step{
			{op: "set", key: "a", value: "1", count: 1},
			{op: "set", key: "b", value: "2", count: 2},
			{op: "del", key: "a", found: true, count: 1},
			{op: "get", key: "a", count: 1},
			{op: "get", key: "b", value: "2", found: true, count: 1},
		}},
		{"delete a missing key", []step{
			{op: "del", key: "a", count: 0},
			{op: "set", key: "a", value: "1", count: 1},
			{op: "del", key: "a", found: true, count: 0},
			{op: "del", key: "a", count: 0},
		}},
		{"set again after delete", []step{
			{op: "set", key: "a", value: "1", count: 1},
			{op: "del", key: "a", found: true, count: 0},
			{op: "set", key: "a", value: "2", count: 1},
			{op: "get", key: "a", value: "2", found: true, count: 1},
		}},
		{"empty value", []step{
			{op: "set", key: "a", value: "", count: 1},
			{op: "get", key: "a", value: "", found: true, count: 1},
		}},
		{"binary key and value", []step{
			{op: "set", key: "k\x00\n\xff", value: "v \x00\r\n", count: 1},
			{op: "get", key: "k\x00\n\xff", value: "v \x00\r\n", found: true, count: 1},
			{op: "get", key: "k\x00\n", count: 1},
		}},
		{"longest key and value", []step{
			{op: "set", key: strings.Repeat("k", maxKeyLen), value: strings.Repeat("v", maxValueLen), count: 1},
			{op: "get", key: strings.Repeat("k", maxKeyLen), value: strings.Repeat("v", maxValueLen), found: true, count: 1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStore(t, 1<<20)
			for i, s := range tt.steps {
				switch s.op {
				case "set":
					if err := st.Set(s.key, s.value); err != nil {
						t.Fatalf("step %d: Set(%q): %v", i, s.key, err)
					}
				case "get":
					v, ok := st.Get(s.key)
					if ok != s.found || v != s.value {
						t.Fatalf("step %d: Get(%q) = %.40q, %v; want %.40q, %v", i, s.key, v, ok, s.value, s.found)
					}
				case "del":
					ok, err := st.Delete(s.key)
					if err != nil || ok != s.found {
						t.Fatalf("step %d: Delete(%q) = %v, %v; want %v, nil", i, s.key, ok, err, s.found)
					}
				}
				if n := st.Count(); n != s.count {
					t.Fatalf("step %d (%s %q): Count() = %d, want %d", i, s.op, s.key, n, s.count)
				}
				if n := st.Stats().Entries; n != s.count {
					t.Fatalf("step %d: Stats().Entries = %d, want %d", i, n, s.count)
				}
			}
		})
	}
}

func TestStoreLimits(t *testing.T) {
	tests := []struct {
		name    string
		key     string
		value   string
		wantErr string
	}{
		{"empty key", "", "v", "key is 0 bytes long"},
		{"key of 256 bytes", strings.Repeat("k", maxKeyLen+1), "v", "key is 256 bytes long"},
		{"value of 64 KiB + 1", "k", strings.Repeat("v", maxValueLen+1), "value is 65537 bytes long"},
		{"key of 255 bytes", strings.Repeat("k", maxKeyLen), "v", ""},
		{"value of 64 KiB", "k", strings.Repeat("v", maxValueLen), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStore(t, 1<<20)
			before := st.Stats()
			err := st.Set(tt.key, tt.value)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Set: %v", err)
				}
				if v, ok := st.Get(tt.key); !ok || v != tt.value {
					t.Fatalf("Get after Set: %d bytes, %v", len(v), ok)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Set: error %v, want one with %q", err, tt.wantErr)
			}
			if after := st.Stats(); after != before {
				t.Fatalf("a refused Set changed the store: %+v, then %+v", before, after)
			}
		})
	}
}

func TestArenaFull(t *testing.T) {
	tests := []struct {
		name      string
		size      int
		valueSize int
	}{
		{"smallest arena", minArenaSize, 20},
		{"4 KiB arena, 100-byte values", 4096, 100},
		{"1 MiB arena, 64 KiB values", 1 << 20, maxValueLen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStore(t, tt.size)
			value := strings.Repeat("x", tt.valueSize)
			var err error
			n := 0
			for ; n < tt.size; n++ {
				if err = st.Set(fmt.Sprintf("k%04d", n), value); err != nil {
					break
				}
			}
			if !errors.Is(err, ErrArenaFull) {
				t.Fatalf("after %d keys: Set: %v, want ErrArenaFull", n, err)
			}
			s := st.Stats()
			for _, want := range []string{"arena full", fmt.Sprintf("k%04d", n), fmt.Sprintf("at offset %d", s.Used),
				fmt.Sprintf("%d bytes are free", int64(tt.size)-s.Used), fmt.Sprintf("of %d used", tt.size)} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if s.Entries != n || s.Used > int64(tt.size) {
				t.Fatalf("stats after the refusal: %+v, want %d entries", s, n)
			}
			for i := range n {
				if v, ok := st.Get(fmt.Sprintf("k%04d", i)); !ok || v != value {
					t.Fatalf("key k%04d lost after the arena filled", i)
				}
			}
			// What fits still goes in; the arena still opens.
			free := int64(tt.size) - s.Used
			if free < recordHdrSize+1 {
				t.Fatalf("%d bytes free: pick sizes that leave room for a last record", free)
			}
			if err := st.Set("z", strings.Repeat("y", int(free)-recordHdrSize-1)); err != nil {
				t.Fatalf("a record of exactly the free space: %v", err)
			}
			if got := st.Stats().Used; got != int64(tt.size) {
				t.Fatalf("used %d after filling the arena exactly, want %d", got, tt.size)
			}
			// Not even a delete fits now.
			if ok, err := st.Delete("k0000"); !errors.Is(err, ErrArenaFull) || ok {
				t.Fatalf("Delete in a full arena: %v, %v; want false, ErrArenaFull", ok, err)
			}
			if _, ok := st.Get("k0000"); !ok {
				t.Fatal("a refused Delete removed the key")
			}
			reopened, err := OpenArena(st.mem)
			if err != nil {
				t.Fatalf("reopening a full arena: %v", err)
			}
			if got, want := contents(t, reopened), contents(t, st); !maps.Equal(got, want) {
				t.Fatalf("reopened full arena holds %d keys, want %d", len(got), len(want))
			}
		})
	}
}

// TestReopenFromMemfd is a live update without the kernel: a store writes
// into a memfd, all its Go structures go, and a new store over the same
// memfd finds everything.
func TestReopenFromMemfd(t *testing.T) {
	tests := []struct {
		name   string
		keys   int
		remove []int // keys deleted after the fill
		update []int // keys overwritten after the fill
	}{
		{"empty", 0, nil, nil},
		{"one key", 1, nil, nil},
		{"1000 keys", 1000, nil, nil},
		{"with deletes and overwrites", 500, []int{0, 7, 499}, []int{1, 7, 250}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := newMemfd("kvcache-test", 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, err := createFileArena(f)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{}
			for i := range tt.keys {
				k := keyName(i)
				want[k] = valueFor(k)
				if err := st.Set(k, want[k]); err != nil {
					t.Fatal(err)
				}
			}
			for _, i := range tt.update {
				k := keyName(i)
				want[k] = "updated-" + k
				if err := st.Set(k, want[k]); err != nil {
					t.Fatal(err)
				}
			}
			for _, i := range tt.remove {
				delete(want, keyName(i))
				if _, err := st.Delete(keyName(i)); err != nil {
					t.Fatal(err)
				}
			}
			used := st.Stats().Used
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			st = nil

			for gen := uint64(1); gen <= 3; gen++ {
				st, err := openFileArena(f)
				if err != nil {
					t.Fatalf("open %d: %v", gen, err)
				}
				if got := contents(t, st); !maps.Equal(got, want) {
					t.Fatalf("open %d: %d keys, want %d (%v)", gen, len(got), len(want), diffKeys(got, want))
				}
				wantStats := Stats{Entries: len(want), Used: used, Size: 1 << 20, Restored: true, Generation: gen}
				if s := st.Stats(); s != wantStats {
					t.Fatalf("open %d: stats %+v, want %+v", gen, s, wantStats)
				}
				if st.Note() != "" {
					t.Fatalf("open %d: note %q on an arena closed cleanly", gen, st.Note())
				}
				// The generation is in the memfd itself, in both header copies.
				var hdr [dataStart]byte
				if _, err := f.ReadAt(hdr[:], 0); err != nil {
					t.Fatal(err)
				}
				for _, base := range []int{0, headerSize} {
					if g := le.Uint64(hdr[base+hdrGeneration:]); g != gen {
						t.Fatalf("open %d: header copy at %d has generation %d", gen, base, g)
					}
				}
				st.Close()
			}
		})
	}
}

func diffKeys(got, want map[string]string) string {
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			return fmt.Sprintf("key %q: got %q (%v), want %q", k, g, ok, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			return fmt.Sprintf("unexpected key %q", k)
		}
	}
	return "same"
}

// sample is an arena of 1024 bytes with three records: put "alpha",
// put "beta", delete "alpha". It returns the arena and its record offsets.
func sample(t testing.TB) ([]byte, []int64) {
	t.Helper()
	st := newStore(t, 1024)
	var offs []int64
	for _, op := range []struct{ key, value string }{{"alpha", "one"}, {"beta", "two"}, {"alpha", ""}} {
		offs = append(offs, st.Stats().Used)
		var err error
		if op.value == "" {
			_, err = st.Delete(op.key)
		} else {
			err = st.Set(op.key, op.value)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return st.mem, offs
}

// setHeader writes a uint64 (or uint32 for version) header field into both
// copies and fixes their checksums, as a writer with a bug would.
func setHeader(mem []byte, field int, v uint64) {
	for _, base := range []int{0, headerSize} {
		if field == hdrVersion {
			le.PutUint32(mem[base+field:], uint32(v))
		} else {
			le.PutUint64(mem[base+field:], v)
		}
		le.PutUint32(mem[base+hdrCRC:], crc32.Checksum(mem[base:base+hdrCRC], castagnoli))
	}
}

// fixRecord recomputes the checksum of the record at off.
func fixRecord(mem []byte, off int64) {
	end := off + recordHdrSize + int64(mem[off+5]) + int64(le.Uint32(mem[off+8:]))
	le.PutUint32(mem[off:], crc32.Checksum(mem[off+4:end], castagnoli))
}

func TestCorruptArena(t *testing.T) {
	_, offs := sample(t)
	tests := []struct {
		name       string
		damage     func(mem []byte) []byte
		wantOffset int64
		wantReason string
	}{
		{"zeroed", func(m []byte) []byte { clear(m); return m }, 0, `not a kvcache arena: the magic is "\x00\x00\x00\x00"`},
		{"magic of both copies", func(m []byte) []byte { m[0], m[headerSize] = 'X', 'X'; return m }, 0, "not a kvcache arena"},
		{"a header byte of both copies", func(m []byte) []byte { m[hdrEntries] ^= 1; m[headerSize+hdrEntries] ^= 1; return m },
			hdrCRC, "header checksum mismatch"},
		{"first copy torn, second copy damaged", func(m []byte) []byte { m[hdrUsed] ^= 1; m[headerSize+3] = 'X'; return m },
			hdrCRC, "the second header copy is bad too"},
		{"newer version", func(m []byte) []byte { setHeader(m, hdrVersion, 2); return m }, hdrVersion, "arena version 2"},
		{"size field", func(m []byte) []byte { setHeader(m, hdrSize, 2048); return m }, hdrSize, "says the arena is 2048 bytes long, it is 1024"},
		{"arena cut short", func(m []byte) []byte { return m[:1000] }, hdrSize, "says the arena is 1024 bytes long, it is 1000"},
		{"arena too small", func(m []byte) []byte { return m[:100] }, 0, "smaller than any kvcache arena"},
		{"used past the end", func(m []byte) []byte { setHeader(m, hdrUsed, 4096); return m }, hdrUsed, "4096 bytes are used"},
		{"used inside the headers", func(m []byte) []byte { setHeader(m, hdrUsed, 64); return m }, hdrUsed, "64 bytes are used"},
		{"entries", func(m []byte) []byte { setHeader(m, hdrEntries, 5); return m }, hdrEntries, "header says 5 entries, the log holds 1"},
		{"reserved byte", func(m []byte) []byte {
			m[hdrReserved+3], m[headerSize+hdrReserved+3] = 1, 1
			setHeader(m, hdrGeneration, 0)
			return m
		}, hdrReserved + 3, "reserved header byte"},
		{"generation at its maximum", func(m []byte) []byte { setHeader(m, hdrGeneration, ^uint64(0)); return m }, hdrGeneration, "maximum"},
		{"a value byte", func(m []byte) []byte { m[offs[1]+recordHdrSize+4+1] ^= 0x20; return m }, offs[1], "record checksum mismatch"},
		{"a key byte", func(m []byte) []byte { m[offs[0]+recordHdrSize] = 'A'; return m }, offs[0], "record checksum mismatch"},
		{"a record's checksum", func(m []byte) []byte { m[offs[2]] ^= 0xff; return m }, offs[2], "record checksum mismatch"},
		{"value length past the log", func(m []byte) []byte { le.PutUint32(m[offs[1]+8:], 500); return m }, offs[1], "runs past the end of the log"},
		{"value length over the limit", func(m []byte) []byte { le.PutUint32(m[offs[1]+8:], maxValueLen+1); return m }, offs[1], "value length 65537 is over the limit"},
		{"used cuts the last record", func(m []byte) []byte { setHeader(m, hdrUsed, uint64(offs[2]+5)); return m }, offs[2], "record header needs 12 bytes"},
		{"record type", func(m []byte) []byte { m[offs[1]+4] = 7; fixRecord(m, offs[1]); return m }, offs[1], "unknown record type 7"},
		{"reserved record bytes", func(m []byte) []byte { m[offs[1]+6] = 1; fixRecord(m, offs[1]); return m }, offs[1], "reserved record bytes"},
		{"empty key", func(m []byte) []byte {
			// Record 0 becomes an empty-key put whose value swallows the key bytes.
			m[offs[0]+5], m[offs[0]+8] = 0, 3+5
			fixRecord(m, offs[0])
			return m
		}, offs[0], "empty key"},
		{"delete with a value", func(m []byte) []byte {
			// Record 1 (put beta=two) becomes a delete of "beta" carrying "two".
			m[offs[1]+4] = recDel
			fixRecord(m, offs[1])
			return m
		}, offs[1], "delete record with a 3-byte value"},
		{"delete of a key never stored", func(m []byte) []byte {
			m[offs[2]+recordHdrSize] = 'A' // delete "Alpha"
			fixRecord(m, offs[2])
			return m
		}, offs[2], `a delete of key "Alpha", which is not stored`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem, _ := sample(t)
			mem = tt.damage(mem)
			before := slices.Clone(mem)
			st, err := OpenArena(mem)
			if err == nil {
				t.Fatalf("opened a damaged arena: %d keys", st.Count())
			}
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T), want a *CorruptError", err, err)
			}
			if ce.Offset != tt.wantOffset || !strings.Contains(ce.Reason, tt.wantReason) {
				t.Fatalf("error %q\nwant offset %d and a reason with %q", err, tt.wantOffset, tt.wantReason)
			}
			if want := fmt.Sprintf("arena corrupt at offset %d (%#x): ", tt.wantOffset, tt.wantOffset); !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("error %q does not start with %q", err, want)
			}
			if !slices.Equal(mem, before) {
				t.Fatal("a refused open wrote into the arena")
			}
		})
	}
}

// TestInterruptedWrite opens arenas as a process stopped in the middle of
// a write leaves them: every acknowledged write is there.
func TestInterruptedWrite(t *testing.T) {
	tests := []struct {
		name string
		// stop makes mem what it is when the write of "new" is stopped;
		// old is the header area before the write.
		stop     func(mem, old []byte)
		wantNew  bool
		wantNote bool
	}{
		{"record written, header not yet", func(m, old []byte) { copy(m[:dataStart], old) }, false, false},
		{"first copy half written", func(m, old []byte) {
			copy(m[20:dataStart], old[20:]) // first copy: 20 new bytes, then old ones
		}, false, true},
		{"first copy written, second not yet", func(m, old []byte) { copy(m[headerSize:dataStart], old[headerSize:]) }, true, false},
		{"second copy half written", func(m, old []byte) { copy(m[headerSize+30:dataStart], old[headerSize+30:]) }, true, false},
		{"record half written", func(m, old []byte) {
			copy(m[:dataStart], old)
			clear(m[le.Uint64(old[hdrUsed:])+8:])
		}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem, _ := sample(t)
			st, err := OpenArena(mem)
			if err != nil {
				t.Fatal(err)
			}
			old := slices.Clone(mem[:dataStart])
			if err := st.Set("new", "value"); err != nil {
				t.Fatal(err)
			}
			tt.stop(mem, old)
			st, err = OpenArena(mem)
			if err != nil {
				t.Fatalf("open after the stop: %v", err)
			}
			want := map[string]string{"beta": "two"}
			if tt.wantNew {
				want["new"] = "value"
			}
			if got := contents(t, st); !maps.Equal(got, want) {
				t.Fatalf("contents %v, want %v", got, want)
			}
			if (st.Note() != "") != tt.wantNote {
				t.Fatalf("note %q, want one: %v", st.Note(), tt.wantNote)
			}
			// The log goes on from there and reopens.
			if err := st.Set("after", "x"); err != nil {
				t.Fatal(err)
			}
			want["after"] = "x"
			st, err = OpenArena(mem)
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			if got := contents(t, st); !maps.Equal(got, want) {
				t.Fatalf("after reopening: %v, want %v", got, want)
			}
		})
	}
}

func TestMemfdSizes(t *testing.T) {
	tests := []struct {
		name    string
		size    int64
		wantErr string
	}{
		{"too small", minArenaSize - 1, "must be 256 to"},
		{"too large", maxArenaSize + 1, "must be 256 to"},
		{"smallest", minArenaSize, ""},
		{"64 MiB", defaultArenaSz, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := newMemfd("kvcache-test", tt.size)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("newMemfd(%d): %v, want an error with %q", tt.size, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, err := createFileArena(f)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if s := st.Stats(); s.Size != tt.size || s.Used != dataStart || s.Restored || s.Generation != 0 {
				t.Fatalf("new arena stats %+v", s)
			}
		})
	}
}

func TestOpenFileNotAnArena(t *testing.T) {
	tests := []struct {
		name    string
		content func(f *os.File) error
		want    string
	}{
		{"empty memfd", func(f *os.File) error { return f.Truncate(0) }, "arena corrupt at offset 0 (0x0): the arena file"},
		{"zero bytes", func(f *os.File) error { return f.Truncate(4096) }, "not a kvcache arena"},
		{"text", func(f *os.File) error {
			_, err := io.WriteString(f, strings.Repeat("not an arena\n", 100))
			return err
		}, "not a kvcache arena"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := newMemfd("kvcache-test", minArenaSize)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := tt.content(f); err != nil {
				t.Fatal(err)
			}
			st, err := openFileArena(f)
			if err == nil {
				st.Close()
				t.Fatal("opened")
			}
			var ce *CorruptError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want a *CorruptError with %q", err, tt.want)
			}
		})
	}
}
