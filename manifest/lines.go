package manifest

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The toml package gives no position for a decoded key, so a small scan
// of the source finds the line of each field path (workload[2].fd[1].token):
// table headers, [[array]] headers counted per parent, dotted keys, and
// the elements of arrays and inline tables. It follows TOML closely enough
// for any file the toml package accepts, and on any other input it returns
// what it found so far; it never panics and always ends.

// lineIndex maps field paths to the line where they first appear.
type lineIndex map[string]int

// find returns the line of path or, failing that, of the nearest table or
// array holding it; 0 if none is known.
func (ix lineIndex) find(path string) int {
	for path != "" {
		if l, ok := ix[path]; ok {
			return l
		}
		path = parentPath(path)
	}
	return 0
}

// parentPath drops the last key or index of a path; quoted keys may hold
// '.' and '['.
func parentPath(path string) string {
	cut := 0
	quoted := false
	for i := 0; i < len(path); i++ {
		switch c := path[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && (c == '.' || c == '['):
			cut = i
		}
	}
	return path[:cut]
}

// Limits of a config or manifest file. The TOML library needs memory out
// of proportion to its input for some shapes (a few hundred KB of nested
// inline tables or of dotted key parts exhaust any machine), and PID 1
// reads a manifest it did not write: so the scan below checks these before
// the library sees a byte, and reports the first one broken with its line.
// A real file is far from every one of them; docs/manifest.md lists them.
const (
	MaxFileSize = 4 << 20 // bytes of a file
	MaxDepth    = 16      // arrays and inline tables nested in one value
	MaxKeyLen   = 128     // bytes of one key (a part of a dotted key)
	MaxKeyParts = 8       // parts of a dotted key or a table header
	MaxTables   = 10000   // [table] and [[array]] headers
	MaxValues   = 100000  // keys and array elements, all counted
	MaxProblems = 50      // problems reported; the rest are counted
)

// maxPathLen bounds the field paths recorded (never reached within the
// limits above; a guard for the scan's own memory).
const maxPathLen = 4096

// indexLines returns the line of every field path of data, as far as data
// can be scanned.
func indexLines(data []byte) lineIndex {
	ix, _ := scan(data)
	return ix
}

// scan indexes the lines of data and checks the limits above and that the
// file holds no NUL byte. It returns the first limit broken, as a problem
// with its line, or nil.
func scan(data []byte) (lineIndex, *problem) {
	s := &scanner{src: data, line: 1, index: lineIndex{}, arrays: map[string]int{}}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		line := 1 + bytes.Count(data[:i], []byte{'\n'})
		col := i - bytes.LastIndexByte(data[:i], '\n')
		return s.index, &problem{line: line, text: fmt.Sprintf("a NUL byte at column %d: a config or manifest is text (is the file truncated or overwritten?)", col)}
	}
	s.document()
	return s.index, s.limit
}

type scanner struct {
	src    []byte
	i      int
	line   int
	depth  int
	index  lineIndex
	arrays map[string]int // [[header]] path → how many seen so far
	tables int            // headers seen
	values int            // keys and array elements seen
	limit  *problem       // the first limit broken; the scan stops there
}

// exceed records a broken limit at line and ends the scan.
func (s *scanner) exceed(line int, format string, args ...any) {
	if s.limit == nil {
		s.limit = &problem{line: line, text: fmt.Sprintf(format, args...)}
	}
	s.i = len(s.src)
}

func (s *scanner) eof() bool { return s.i >= len(s.src) }

func (s *scanner) peek() byte {
	if s.i < len(s.src) {
		return s.src[s.i]
	}
	return 0
}

func (s *scanner) hasPrefix(p string) bool { return bytes.HasPrefix(s.src[s.i:], []byte(p)) }

// next consumes one byte, counting lines.
func (s *scanner) next() {
	if s.i < len(s.src) {
		if s.src[s.i] == '\n' {
			s.line++
		}
		s.i++
	}
}

// record notes the line of path, counting it against MaxValues.
func (s *scanner) record(path string, line int) {
	if s.values++; s.values > MaxValues {
		s.exceed(line, "more than %d keys and array elements: the limit of a luoinit file", MaxValues)
		return
	}
	if len(path) > maxPathLen {
		return
	}
	if _, ok := s.index[path]; !ok {
		s.index[path] = line
	}
}

func (s *scanner) skipSpace() {
	for !s.eof() && (s.src[s.i] == ' ' || s.src[s.i] == '\t' || s.src[s.i] == '\r') {
		s.i++
	}
}

func (s *scanner) skipComment() {
	for !s.eof() && s.src[s.i] != '\n' {
		s.i++
	}
}

// skipLine consumes the rest of the line and its newline.
func (s *scanner) skipLine() {
	s.skipComment()
	s.next()
}

func (s *scanner) document() {
	if s.hasPrefix("\xef\xbb\xbf") {
		s.i = 3
	}
	table := ""
	for !s.eof() {
		s.skipSpace()
		switch s.peek() {
		case 0:
			if s.eof() {
				return
			}
			s.skipLine()
		case '\n':
			s.next()
		case '#':
			s.skipLine()
		case '[':
			if t, ok := s.header(); ok {
				table = t
			}
			s.skipLine()
		default:
			s.keyValue(table)
			s.skipLine()
		}
	}
}

// header reads [table] or [[array]] and returns the table's path.
func (s *scanner) header() (string, bool) {
	line := s.line
	if s.tables++; s.tables > MaxTables {
		s.exceed(line, "more than %d tables: the limit of a luoinit file", MaxTables)
		return "", false
	}
	s.i++
	array := s.peek() == '['
	if array {
		s.i++
	}
	keys, ok := s.key()
	if !ok {
		return "", false
	}
	s.skipSpace()
	if s.peek() != ']' {
		return "", false
	}
	s.i++
	if array {
		if s.peek() != ']' {
			return "", false
		}
		s.i++
	}
	path := ""
	for k, key := range keys {
		path = joinPath(path, quoteKey(key))
		if array && k == len(keys)-1 {
			n := s.arrays[path]
			s.arrays[path] = n + 1
			s.record(path, line)
			path = fmt.Sprintf("%s[%d]", path, n)
		} else if n, ok := s.arrays[path]; ok {
			path = fmt.Sprintf("%s[%d]", path, n-1)
		}
		s.record(path, line)
	}
	return path, true
}

// keyValue reads key = value in the table at path.
func (s *scanner) keyValue(table string) {
	line := s.line
	keys, ok := s.key()
	if !ok {
		return
	}
	path := table
	for _, key := range keys {
		path = joinPath(path, quoteKey(key))
		s.record(path, line)
	}
	s.skipSpace()
	if s.peek() != '=' {
		return
	}
	s.i++
	s.skipSpace()
	s.value(path)
}

// key reads a dotted key, checking MaxKeyParts and MaxKeyLen.
func (s *scanner) key() ([]string, bool) {
	var keys []string
	line := s.line
	for {
		s.skipSpace()
		var k string
		switch c := s.peek(); {
		case c == '"':
			if s.hasPrefix(`"""`) {
				return nil, false
			}
			k = s.basicString()
		case c == '\'':
			if s.hasPrefix(`'''`) {
				return nil, false
			}
			k = s.literalString()
		case c < utf8.RuneSelf && isBareKeyChar(rune(c)):
			start := s.i
			for !s.eof() && s.src[s.i] < utf8.RuneSelf && isBareKeyChar(rune(s.src[s.i])) {
				s.i++
			}
			k = string(s.src[start:s.i])
		default:
			return nil, false
		}
		if len(k) > MaxKeyLen {
			s.exceed(line, "key %s is %d bytes long (at most %d)", shorten(k, 40), len(k), MaxKeyLen)
			return nil, false
		}
		if keys = append(keys, k); len(keys) > MaxKeyParts {
			s.exceed(line, "dotted key %s... has more than %d parts", shorten(strings.Join(keys[:3], "."), 40), MaxKeyParts)
			return nil, false
		}
		s.skipSpace()
		if s.peek() != '.' {
			return keys, true
		}
		s.i++
	}
}

// value skips a value, recording the elements of arrays and the keys of
// inline tables under path.
func (s *scanner) value(path string) {
	switch c := s.peek(); {
	case s.hasPrefix(`"""`):
		s.multiline(`"""`, true)
	case s.hasPrefix(`'''`):
		s.multiline(`'''`, false)
	case c == '"':
		s.basicString()
	case c == '\'':
		s.literalString()
	case (c == '[' || c == '{') && s.depth >= MaxDepth:
		s.exceed(s.line, "%s: arrays and inline tables nested more than %d deep", shorten(path, 60), MaxDepth)
	case c == '[':
		s.depth++
		s.array(path)
		s.depth--
	case c == '{':
		s.depth++
		s.inlineTable(path)
		s.depth--
	default:
		s.scalar()
	}
}

// array skips an array, recording each element as path[n].
func (s *scanner) array(path string) {
	n := 0
	s.elements(']', func() {
		elem := fmt.Sprintf("%s[%d]", path, n)
		n++
		s.record(elem, s.line)
		s.value(elem)
	})
}

// inlineTable skips an inline table, recording its keys under path.
func (s *scanner) inlineTable(path string) {
	s.elements('}', func() { s.keyValue(path) })
}

// elements steps over the opening bracket of an array or inline table,
// then calls elem at each element until the closing byte end, skipping
// blanks, comments and commas. Where elem reads nothing it steps over one
// byte, so that the scan always ends.
func (s *scanner) elements(end byte, elem func()) {
	s.i++
	for !s.eof() {
		switch s.src[s.i] {
		case ' ', '\t', '\r', '\n':
			s.next()
		case '#':
			s.skipComment()
		case ',':
			s.i++
		case end:
			s.i++
			return
		default:
			start := s.i
			elem()
			if s.i == start {
				s.i++ // not an element: step over it
			}
		}
	}
}

// scalar skips a number, boolean or date-time.
func (s *scanner) scalar() {
	start := s.i
	for !s.eof() {
		switch s.src[s.i] {
		case ' ':
			// A date and a time may be separated by a space.
			if s.i-start == 10 && s.i+1 < len(s.src) && isDigit(s.src[s.i+1]) && isDate(s.src[start:s.i]) {
				s.i++
				continue
			}
			return
		case '\t', '\r', '\n', ',', ']', '}', '#':
			return
		}
		s.i++
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isDate(b []byte) bool {
	return len(b) == 10 && b[4] == '-' && b[7] == '-' &&
		isDigit(b[0]) && isDigit(b[1]) && isDigit(b[2]) && isDigit(b[3]) &&
		isDigit(b[5]) && isDigit(b[6]) && isDigit(b[8]) && isDigit(b[9])
}

// basicString reads a one-line "string" and returns its value. It stops
// at the end of the line if the string is not closed.
func (s *scanner) basicString() string {
	s.i++
	var b []byte
	for !s.eof() {
		c := s.src[s.i]
		switch c {
		case '"':
			s.i++
			return string(b)
		case '\n':
			return string(b)
		case '\\':
			b = s.escape(b)
		default:
			b = append(b, c)
			s.i++
		}
	}
	return string(b)
}

// escape reads an escape sequence of a basic string and appends its value.
func (s *scanner) escape(b []byte) []byte {
	s.i++ // the backslash
	if s.eof() || s.src[s.i] == '\n' {
		return b
	}
	c := s.src[s.i]
	s.i++
	hex := 0
	switch c {
	case 'b':
		return append(b, '\b')
	case 't':
		return append(b, '\t')
	case 'n':
		return append(b, '\n')
	case 'f':
		return append(b, '\f')
	case 'r':
		return append(b, '\r')
	case 'e':
		return append(b, 0x1b)
	case '"', '\\':
		return append(b, c)
	case 'x':
		hex = 2
	case 'u':
		hex = 4
	case 'U':
		hex = 8
	default:
		return append(b, '\\', c)
	}
	if s.i+hex > len(s.src) {
		return b
	}
	v, err := strconv.ParseUint(string(s.src[s.i:s.i+hex]), 16, 32)
	if err != nil {
		return b
	}
	s.i += hex
	return utf8.AppendRune(b, rune(v))
}

// literalString reads a one-line 'string'.
func (s *scanner) literalString() string {
	s.i++
	start := s.i
	for !s.eof() {
		switch s.src[s.i] {
		case '\'':
			v := string(s.src[start:s.i])
			s.i++
			return v
		case '\n':
			return string(s.src[start:s.i])
		}
		s.i++
	}
	return string(s.src[start:])
}

// multiline skips a multi-line basic or literal string, delim being its
// three quotes. Up to two more quotes may follow the closing delimiter:
// they belong to the content.
func (s *scanner) multiline(delim string, escapes bool) {
	s.i += len(delim)
	for !s.eof() {
		if escapes && s.src[s.i] == '\\' {
			s.next()
			s.next()
			continue
		}
		if s.hasPrefix(delim) {
			s.i += len(delim)
			for k := 0; k < 2 && s.peek() == delim[0]; k++ {
				s.i++
			}
			return
		}
		s.next()
	}
}
