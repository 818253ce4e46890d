package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"sync"
)

// The arena, all integers little-endian:
//
//	offset 0    header (64 bytes)
//	offset 64   a second copy of the header, written after the first
//	offset 128  the log: records back to back, up to "used"
//
// Header:
//
//	0   magic "KVC1"
//	4   version, uint32: 1
//	8   arena size in bytes, uint64: the size of the memory it is in
//	16  entries, uint64: live keys
//	24  used, uint64: the end of the log (bytes used, headers included)
//	32  generation, uint64: 0 for a new arena, +1 at every open of an existing one
//	40  20 reserved bytes, zero
//	60  CRC32-C of bytes 0 to 59, uint32
//
// Record:
//
//	0   CRC32-C of the record's bytes from offset 4 to its end, uint32
//	4   type, uint8: 1 put, 2 delete
//	5   key length, uint8: 1 to 255
//	6   reserved, uint16: 0
//	8   value length, uint32: 0 to 65536, 0 for a delete
//	12  key, then value
//
// A write appends its record after "used" and then commits it by rewriting
// the header: the first copy, then the second. The arena is consistent at
// every instruction, so a process stopped anywhere (SIGSTOP, SIGKILL, a
// kexec after SIGSTOP) leaves an arena that opens with every acknowledged
// write: a record past "used" is not part of the log, and while the first
// header copy is being written the second holds the state before the
// write. Open uses the first copy unless its magic or checksum is bad,
// then the second.
//
// The log only grows: an overwrite or a delete appends a record, and a
// full arena refuses writes (ErrArenaFull) until kvcache starts over with
// a new arena.
const (
	arenaMagic     = "KVC1"
	arenaVersion   = 1
	headerSize     = 64
	dataStart      = 2 * headerSize
	recordHdrSize  = 12
	maxKeyLen      = 255
	maxValueLen    = 64 << 10
	minArenaSize   = 256
	maxArenaSize   = 1 << 40
	defaultArenaSz = 64 << 20

	hdrMagic      = 0
	hdrVersion    = 4
	hdrSize       = 8
	hdrEntries    = 16
	hdrUsed       = 24
	hdrGeneration = 32
	hdrReserved   = 40
	hdrCRC        = 60

	recPut = 1
	recDel = 2
)

var (
	le         = binary.LittleEndian
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// ErrArenaFull is wrapped by the error of a write that does not fit in
// the arena.
var ErrArenaFull = errors.New("arena full")

// ErrStoreClosed is the error of a write to a closed Store.
var ErrStoreClosed = errors.New("store closed")

// CorruptError is why an arena was refused, at the offset (from the start
// of the arena) of the header field or record at fault.
type CorruptError struct {
	Offset int64
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("arena corrupt at offset %d (%#x): %s", e.Offset, e.Offset, e.Reason)
}

func corrupt(off int64, format string, args ...any) *CorruptError {
	return &CorruptError{Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// Stats is what STATS reports.
type Stats struct {
	Entries    int
	Used       int64 // bytes of the arena in use, headers included
	Size       int64
	Restored   bool // opened from an existing arena, not created
	Generation uint64
}

// Store is a key-value store whose whole state is in mem. Its methods are
// safe for concurrent use. Every write goes straight into mem.
type Store struct {
	mu       sync.RWMutex
	mem      []byte // nil once closed
	index    map[string]int64
	used     int64
	gen      uint64
	restored bool
	note     string
	unmap    func() error
}

// CreateArena formats a new, empty arena in mem, whatever mem holds.
func CreateArena(mem []byte) (*Store, error) {
	if n := int64(len(mem)); n < minArenaSize || n > maxArenaSize {
		return nil, fmt.Errorf("an arena of %d bytes: the size must be %d to %d bytes", n, minArenaSize, int64(maxArenaSize))
	}
	s := &Store{mem: mem, index: map[string]int64{}, used: dataStart}
	s.commit()
	return s, nil
}

// OpenArena opens the arena in mem: it checks the header, every record's
// checksum and layout, and that the log holds as many keys as the header
// says, builds the index, and bumps the generation. A damaged arena is a
// *CorruptError naming the offset; it is never opened.
func OpenArena(mem []byte) (*Store, error) {
	size := int64(len(mem))
	if size < minArenaSize {
		return nil, corrupt(0, "the arena is %d bytes long, smaller than any kvcache arena (%d bytes)", size, minArenaSize)
	}
	if size > maxArenaSize {
		return nil, corrupt(0, "the arena is %d bytes long, larger than any kvcache arena (%d bytes)", size, int64(maxArenaSize))
	}
	h, base, note, err := readHeader(mem)
	if err != nil {
		return nil, err
	}
	s := &Store{mem: mem, index: map[string]int64{}, used: int64(h.used), gen: h.generation + 1, restored: true, note: note}
	if err := s.replay(); err != nil {
		return nil, err
	}
	if uint64(len(s.index)) != h.entries {
		return nil, corrupt(base+hdrEntries, "the header says %d entries, the log holds %d", h.entries, len(s.index))
	}
	s.commit()
	return s, nil
}

type header struct {
	size, entries, used, generation uint64
}

// readHeader returns the header copy to use and its offset.
func readHeader(mem []byte) (header, int64, string, error) {
	h, errA, torn := decodeHeader(mem, 0)
	if errA == nil {
		return h, 0, "", nil
	}
	if !torn {
		return header{}, 0, "", errA
	}
	if string(mem[hdrMagic:hdrMagic+4]) != arenaMagic && string(mem[headerSize+hdrMagic:headerSize+hdrMagic+4]) != arenaMagic {
		return header{}, 0, "", corrupt(0, "not a kvcache arena: the magic is %q, want %q", mem[hdrMagic:hdrMagic+4], arenaMagic)
	}
	hb, errB, _ := decodeHeader(mem, headerSize)
	if errB != nil {
		return header{}, 0, "", corrupt(errA.Offset, "%s; the second header copy is bad too: %v", errA.Reason, errB)
	}
	note := fmt.Sprintf("the first header copy is damaged (%v); using the second copy, which holds the state before the write that was under way", errA)
	return hb, headerSize, note, nil
}

// decodeHeader reads and checks the header copy at base. torn is true when
// the copy is not whole (bad magic or checksum), so that the other copy
// may be used; a whole copy with bad contents is not torn.
func decodeHeader(mem []byte, base int64) (h header, err *CorruptError, torn bool) {
	b := mem[base : base+headerSize]
	if string(b[hdrMagic:hdrMagic+4]) != arenaMagic {
		return h, corrupt(base+hdrMagic, "header: the magic is %q, want %q", b[hdrMagic:hdrMagic+4], arenaMagic), true
	}
	if stored, sum := le.Uint32(b[hdrCRC:]), crc32.Checksum(b[:hdrCRC], castagnoli); stored != sum {
		return h, corrupt(base+hdrCRC, "header checksum mismatch: stored %#08x, computed %#08x", stored, sum), true
	}
	if v := le.Uint32(b[hdrVersion:]); v != arenaVersion {
		return h, corrupt(base+hdrVersion, "arena version %d; this kvcache reads version %d", v, arenaVersion), false
	}
	h = header{
		size:       le.Uint64(b[hdrSize:]),
		entries:    le.Uint64(b[hdrEntries:]),
		used:       le.Uint64(b[hdrUsed:]),
		generation: le.Uint64(b[hdrGeneration:]),
	}
	if h.size != uint64(len(mem)) {
		return h, corrupt(base+hdrSize, "the header says the arena is %d bytes long, it is %d", h.size, len(mem)), false
	}
	if h.used < dataStart || h.used > h.size {
		return h, corrupt(base+hdrUsed, "the header says %d bytes are used, outside %d to %d", h.used, dataStart, h.size), false
	}
	for i, c := range b[hdrReserved:hdrCRC] {
		if c != 0 {
			return h, corrupt(base+hdrReserved+int64(i), "reserved header byte is %#02x, not 0", c), false
		}
	}
	if h.generation == math.MaxUint64 {
		return h, corrupt(base+hdrGeneration, "the generation counter is at its maximum"), false
	}
	return h, nil, false
}

// replay checks every record of the log and builds the index.
func (s *Store) replay() error {
	for off := int64(dataStart); off < s.used; {
		typ, key, _, end, err := decodeRecord(s.mem[:s.used], off)
		if err != nil {
			return err
		}
		switch typ {
		case recPut:
			s.index[string(key)] = off
		case recDel:
			if _, ok := s.index[string(key)]; !ok {
				return corrupt(off, "a delete of key %q, which is not stored at that point of the log", key)
			}
			delete(s.index, string(key))
		}
		off = end
	}
	return nil
}

// decodeRecord reads and checks the record at off of log.
func decodeRecord(log []byte, off int64) (typ byte, key, value []byte, end int64, err *CorruptError) {
	n := int64(len(log))
	if n-off < recordHdrSize {
		return 0, nil, nil, 0, corrupt(off, "a record header needs %d bytes, the log ends %d bytes after its start", recordHdrSize, n-off)
	}
	b := log[off:]
	klen, vlen := int64(b[5]), int64(le.Uint32(b[8:]))
	if vlen > maxValueLen {
		return 0, nil, nil, 0, corrupt(off, "record value length %d is over the limit (%d)", vlen, maxValueLen)
	}
	end = off + recordHdrSize + klen + vlen
	if end > n {
		return 0, nil, nil, 0, corrupt(off, "a record of %d bytes runs past the end of the log at offset %d", end-off, n)
	}
	b = b[:end-off]
	if stored, sum := le.Uint32(b), crc32.Checksum(b[4:], castagnoli); stored != sum {
		return 0, nil, nil, 0, corrupt(off, "record checksum mismatch: stored %#08x, computed %#08x", stored, sum)
	}
	typ = b[4]
	switch {
	case typ != recPut && typ != recDel:
		return 0, nil, nil, 0, corrupt(off, "unknown record type %d", typ)
	case klen == 0:
		return 0, nil, nil, 0, corrupt(off, "a record with an empty key")
	case le.Uint16(b[6:]) != 0:
		return 0, nil, nil, 0, corrupt(off, "reserved record bytes are %#04x, not 0", le.Uint16(b[6:]))
	case typ == recDel && vlen != 0:
		return 0, nil, nil, 0, corrupt(off, "a delete record with a %d-byte value", vlen)
	}
	key = b[recordHdrSize : recordHdrSize+klen]
	return typ, key, b[recordHdrSize+klen:], end, nil
}

// commit writes the header, first copy then second.
func (s *Store) commit() {
	var h [headerSize]byte
	copy(h[hdrMagic:], arenaMagic)
	le.PutUint32(h[hdrVersion:], arenaVersion)
	le.PutUint64(h[hdrSize:], uint64(len(s.mem)))
	le.PutUint64(h[hdrEntries:], uint64(len(s.index)))
	le.PutUint64(h[hdrUsed:], uint64(s.used))
	le.PutUint64(h[hdrGeneration:], s.gen)
	le.PutUint32(h[hdrCRC:], crc32.Checksum(h[:hdrCRC], castagnoli))
	copy(s.mem[:headerSize], h[:])
	copy(s.mem[headerSize:dataStart], h[:])
}

// appendRecord writes a record after the log and commits it.
func (s *Store) appendRecord(typ byte, key, value string) error {
	n := int64(recordHdrSize + len(key) + len(value))
	if free := int64(len(s.mem)) - s.used; n > free {
		what := "storing"
		if typ == recDel {
			what = "deleting"
		}
		return fmt.Errorf("%w: %s key %q needs a %d-byte record at offset %d, %d bytes are free (%d of %d used)",
			ErrArenaFull, what, key, n, s.used, free, s.used, len(s.mem))
	}
	b := s.mem[s.used : s.used+n]
	b[4], b[5], b[6], b[7] = typ, byte(len(key)), 0, 0
	le.PutUint32(b[8:], uint32(len(value)))
	copy(b[recordHdrSize:], key)
	copy(b[recordHdrSize+len(key):], value)
	le.PutUint32(b, crc32.Checksum(b[4:], castagnoli))
	if typ == recPut {
		s.index[key] = s.used
	} else {
		delete(s.index, key)
	}
	s.used += n
	s.commit()
	return nil
}

func checkKey(key string) error {
	if len(key) == 0 || len(key) > maxKeyLen {
		return fmt.Errorf("key is %d bytes long, want 1 to %d", len(key), maxKeyLen)
	}
	return nil
}

// Set stores value under key, replacing any value it had.
func (s *Store) Set(key, value string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if len(value) > maxValueLen {
		return fmt.Errorf("value is %d bytes long, at most %d", len(value), maxValueLen)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mem == nil {
		return ErrStoreClosed
	}
	return s.appendRecord(recPut, key, value)
}

// Get returns the value of key.
func (s *Store) Get(key string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	off, ok := s.index[key]
	if !ok || s.mem == nil {
		return "", false
	}
	klen, vlen := int64(s.mem[off+5]), int64(le.Uint32(s.mem[off+8:]))
	start := off + recordHdrSize + klen
	return string(s.mem[start : start+vlen]), true
}

// Delete removes key; it reports whether key was there.
func (s *Store) Delete(key string) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mem == nil {
		return false, ErrStoreClosed
	}
	if _, ok := s.index[key]; !ok {
		return false, nil
	}
	if err := s.appendRecord(recDel, key, ""); err != nil {
		return false, err
	}
	return true, nil
}

// Count is the number of keys.
func (s *Store) Count() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.index)
}

// Keys returns every key, sorted.
func (s *Store) Keys() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	keys := make([]string, 0, len(s.index))
	for k := range s.index {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Stats returns the store's figures.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return Stats{Entries: len(s.index), Used: s.used, Size: int64(len(s.mem)), Restored: s.restored, Generation: s.gen}
}

// Note says what OpenArena repaired ("" if nothing): a first header copy
// torn by a write that was under way when the process stopped.
func (s *Store) Note() string { return s.note }

// Close unmaps the arena if the Store mapped it. The Store is not usable
// afterwards; the arena's memory stays as it is.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mem == nil {
		return nil
	}
	s.mem, s.index = nil, nil
	if s.unmap != nil {
		return s.unmap()
	}
	return nil
}
