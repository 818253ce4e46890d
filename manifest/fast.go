package manifest

import (
	"encoding"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// The fast path.
//
// PID 1 parses the manifest on the restore path, between the new kernel's
// start and the first fd handed back, and the TOML library takes longer
// over a large manifest than the kernel takes to give every fd back
// (`make bench`: BenchmarkParse1000FDs against BenchmarkParse1000FDsLibrary).
// Yet a
// manifest PID 1 reads is one that Marshal wrote, in a small and regular
// subset of TOML. fastDecode reads exactly that subset in one pass, with
// no intermediate tree:
//
//   - one item per line: a table header [a.b], an array-of-tables header
//     [[a.b]], or key = value; blank lines and # comments;
//   - bare keys only; values: basic strings ("..." with the standard
//     escapes), decimal integers, booleans, offset date-times like
//     2025-06-01T12:00:05.123Z, and one-line arrays of those;
//   - keys that name fields of Config or Manifest, each set once.
//
// Anything else (a literal or multi-line string, an inline table, a float,
// a dotted or quoted key, a key set twice, a value of the wrong type, an
// unknown key) makes fastDecode give up, and the full parser reads the
// file: it alone produces the error messages, with line numbers. The two
// agree on every file the fast path takes (FuzzFastPathAgrees), and the
// result is validated by the same checker either way.
//
// The limits of lines.go (tables, values, key lengths) guard the TOML
// library's memory, which its input's size does not bound. The fast path
// needs none: it reads in one pass, and what it keeps grows with the
// file, which MaxFileSize bounds. So a valid manifest of more than
// MaxTables fds (one workload with 10,000, say) is read by the fast path;
// the same file with a mistake in it is refused for its size first. The
// fast path has limits of its own, so that what it builds before the
// checker sees it stays small: fastMaxFDTables fd tables (the small ones)
// and fastMaxTables tables of any other kind.
const (
	fastMaxFDTables = 16384
	fastMaxTables   = 2048
)

// fastDecode decodes data into v (a *Config or *Manifest) if data keeps to
// the subset above, and reports whether it could. It returns the field
// paths of the keys set to their zero value: the checker asks whether a
// key was set only when its value is zero (checker.set), so those are all
// of the full decoder's present it needs.
func fastDecode(data []byte, v any) (map[string]bool, bool) {
	if !utf8.Valid(data) {
		return nil, false
	}
	f := &fast{present: map[string]bool{}, tables: map[string]bool{}}
	f.root = reflect.ValueOf(v).Elem()
	f.cur, f.curPath = f.root, ""
	// One conversion: every string decoded is a substring of text, or
	// built when it has escapes.
	text := string(data)
	for len(text) > 0 {
		line, rest, ended := strings.Cut(text, "\n")
		// A CR is a line's end only as the first half of CRLF: the last
		// line, with no LF after it, cannot end in one.
		if !ended && strings.HasSuffix(line, "\r") {
			return nil, false
		}
		if !f.line(line) {
			return nil, false
		}
		text = rest
	}
	return f.present, true
}

type fast struct {
	root    reflect.Value
	cur     reflect.Value   // the struct keys go into
	curPath string          // its field path: workload[0].fd[2]
	present map[string]bool // keys set to their zero value, by field path
	tables  map[string]bool // headers seen, by field path
	set     uint64          // the fields of cur already set, by field index
	// headers counted against fastMaxFDTables and fastMaxTables
	fdTables, otherTables int
}

func (f *fast) line(s string) bool {
	s = strings.TrimLeft(s, " \t")
	switch {
	case s == "":
		return true
	case s[0] == '#':
		return commentOK(s)
	case strings.HasPrefix(s, "[["):
		end := strings.Index(s, "]]")
		if end < 0 || !restIsEmpty(s[end+2:]) {
			return false
		}
		return f.header(strings.TrimSpace(s[2:end]), true)
	case s[0] == '[':
		end := strings.IndexByte(s, ']')
		if end < 0 || !restIsEmpty(s[end+1:]) {
			return false
		}
		return f.header(strings.TrimSpace(s[1:end]), false)
	}
	eq := strings.IndexByte(s, '=')
	if eq < 0 {
		return false
	}
	key := strings.TrimRight(s[:eq], " \t")
	if !bareKey(key) {
		return false
	}
	return f.assign(key, strings.TrimLeft(s[eq+1:], " \t"))
}

// restIsEmpty: only blanks and a comment may follow an item.
func restIsEmpty(s string) bool {
	s = strings.TrimLeft(s, " \t")
	return s == "" || s[0] == '#' && commentOK(s)
}

// commentOK: a comment holds no control character but tab (the TOML
// specification); a CR that ends its line is the line's end.
func commentOK(c string) bool {
	c = strings.TrimSuffix(c, "\r")
	for i := 0; i < len(c); i++ {
		if b := c[i]; b < 0x20 && b != '\t' || b == 0x7f {
			return false
		}
	}
	return true
}

func bareKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isBareKeyChar(rune(k[i])) {
			return false
		}
	}
	return true
}

// header makes the table or array element that name names the current one.
func (f *fast) header(name string, array bool) bool {
	if name == "workload.fd" {
		if f.fdTables++; f.fdTables > fastMaxFDTables {
			return false
		}
	} else if f.otherTables++; f.otherTables > fastMaxTables {
		return false
	}
	rv, path := f.root, ""
	for rest, last := name, false; !last; {
		var p string
		p, rest, last = strings.Cut(rest, ".")
		last = !last
		if !bareKey(p) {
			return false
		}
		field, ok := fieldByKey(rv.Type(), p)
		if !ok {
			return false
		}
		fv := rv.FieldByIndex(field.index)
		fp := joinPath(path, p)
		switch {
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Struct:
			if last && !array {
				return false // [x] for an array of tables
			}
			if last {
				fv.Set(reflect.Append(fv, reflect.Zero(fv.Type().Elem())))
			} else if fv.Len() == 0 {
				return false
			}
			path = fp + "[" + strconv.Itoa(fv.Len()-1) + "]"
			rv = fv.Index(fv.Len() - 1)
		case fv.Kind() == reflect.Struct && fv.Type() != timeType && !implementsText(fv.Type()):
			if last && array {
				return false // [[x]] for a table
			}
			path, rv = fp, fv
		default:
			return false
		}
	}
	if !array {
		if f.tables[path] {
			return false // the same table twice
		}
		f.tables[path] = true
	}
	f.cur, f.curPath, f.set = rv, path, 0
	return true
}

// assign sets key of the current table from the value text s.
func (f *fast) assign(key, s string) bool {
	field, ok := fieldByKey(f.cur.Type(), key)
	if !ok {
		return false
	}
	bit := uint64(1) << field.index[0]
	if len(field.index) != 1 || field.index[0] >= 64 || f.set&bit != 0 {
		return false // set twice (or a struct too wide for the mask)
	}
	f.set |= bit
	fv := f.cur.FieldByIndex(field.index)
	rest, ok := f.value(s, fv)
	if !ok || !restIsEmpty(rest) {
		return false
	}
	if fv.IsZero() {
		f.present[joinPath(f.curPath, key)] = true
	}
	return true
}

// value decodes one value at the start of s into fv and returns what
// follows it.
func (f *fast) value(s string, fv reflect.Value) (string, bool) {
	t := fv.Type()
	switch {
	case t == timeType:
		return dateTime(s, fv)
	case implementsText(t):
		str, rest, ok := basicString(s)
		if !ok {
			return "", false
		}
		if err := fv.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(str)); err != nil {
			return "", false
		}
		return rest, true
	}
	switch t.Kind() {
	case reflect.String:
		str, rest, ok := basicString(s)
		if !ok {
			return "", false
		}
		fv.SetString(str)
		return rest, true
	case reflect.Bool:
		switch {
		case strings.HasPrefix(s, "true"):
			fv.SetBool(true)
			return s[4:], true
		case strings.HasPrefix(s, "false"):
			fv.SetBool(false)
			return s[5:], true
		}
		return "", false
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, rest, ok := integer(s)
		if !ok || fv.OverflowInt(n) {
			return "", false
		}
		fv.SetInt(n)
		return rest, true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, rest, ok := integer(s)
		if !ok || n < 0 || fv.OverflowUint(uint64(n)) {
			return "", false
		}
		fv.SetUint(uint64(n))
		return rest, true
	case reflect.Pointer:
		if t.Elem().Kind() != reflect.Int {
			return "", false
		}
		p := reflect.New(t.Elem())
		rest, ok := f.value(s, p.Elem())
		if !ok {
			return "", false
		}
		fv.Set(p)
		return rest, true
	case reflect.Slice:
		if t.Elem().Kind() != reflect.String {
			return "", false
		}
		return stringArray(s, fv)
	}
	return "", false
}

// basicString reads a TOML basic string at the start of s.
func basicString(s string) (string, string, bool) {
	if len(s) == 0 || s[0] != '"' {
		return "", "", false
	}
	if strings.HasPrefix(s, `"""`) {
		return "", "", false
	}
	var b strings.Builder
	plain := true // no escape yet: the result is a substring
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			if plain {
				return s[1:i], s[i+1:], true
			}
			return b.String(), s[i+1:], true
		case c == '\\':
			if plain {
				b.WriteString(s[1:i])
				plain = false
			}
			if i+1 >= len(s) {
				return "", "", false
			}
			i++
			switch s[i] {
			case '"', '\\':
				b.WriteByte(s[i])
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'u', 'U':
				n := 4
				if s[i] == 'U' {
					n = 8
				}
				if i+n >= len(s) {
					return "", "", false
				}
				r, err := strconv.ParseUint(s[i+1:i+1+n], 16, 32)
				if err != nil || !utf8.ValidRune(rune(r)) {
					return "", "", false
				}
				b.WriteRune(rune(r))
				i += n
			default:
				return "", "", false
			}
		case c < 0x20 && c != '\t' || c == 0x7f:
			return "", "", false
		default:
			if !plain {
				b.WriteByte(c)
			}
		}
	}
	return "", "", false
}

// integer reads a decimal TOML integer at the start of s.
func integer(s string) (int64, string, bool) {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	digits := s[start:i]
	if digits == "" || len(digits) > 1 && digits[0] == '0' {
		return 0, "", false
	}
	if i < len(s) && !(s[i] == ' ' || s[i] == '\t' || s[i] == '#' || s[i] == ',' || s[i] == ']') {
		return 0, "", false // 1_000, 1.5, 1e3, 0x10: the full parser's
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, "", false
	}
	return n, s[i:], true
}

// dateTime reads an offset date-time (RFC 3339, upper-case T and Z) and
// keeps it in UTC, as the full decoder does.
func dateTime(s string, fv reflect.Value) (string, bool) {
	end := strings.IndexAny(s, " \t#")
	if end < 0 {
		end = len(s)
	}
	text := s[:end]
	if len(text) < len("2006-01-02T15:04:05Z") || text[10] != 'T' {
		return "", false
	}
	for i, c := range []byte(text[:19]) {
		switch i {
		case 4, 7:
			if c != '-' {
				return "", false
			}
		case 10:
		case 13, 16:
			if c != ':' {
				return "", false
			}
		default:
			if c < '0' || c > '9' {
				return "", false
			}
		}
	}
	t, err := time.Parse(time.RFC3339Nano, text)
	if err != nil {
		return "", false
	}
	t = t.UTC()
	if t.Year() < 0 || t.Year() > 9999 {
		return "", false
	}
	fv.Set(reflect.ValueOf(t))
	return s[end:], true
}

// stringArray reads a one-line array of basic strings.
func stringArray(s string, fv reflect.Value) (string, bool) {
	if len(s) == 0 || s[0] != '[' {
		return "", false
	}
	s = strings.TrimLeft(s[1:], " \t")
	var out []string
	for {
		if strings.HasPrefix(s, "]") {
			if len(out) > 0 {
				fv.Set(reflect.ValueOf(out).Convert(fv.Type()))
			} else {
				fv.Set(reflect.Zero(fv.Type())) // empty and absent are the same
			}
			return s[1:], true
		}
		str, rest, ok := basicString(s)
		if !ok {
			return "", false
		}
		out = append(out, str)
		s = strings.TrimLeft(rest, " \t")
		switch {
		case strings.HasPrefix(s, ","):
			s = strings.TrimLeft(s[1:], " \t")
			if strings.HasPrefix(s, "]") {
				return "", false // a trailing comma: the full parser's
			}
		case strings.HasPrefix(s, "]"):
		default:
			return "", false
		}
	}
}

func implementsText(t reflect.Type) bool {
	return reflect.PointerTo(t).Implements(textUnmarshalerType)
}

// fieldInfo is where a TOML key's field is in its struct.
type fieldInfo struct{ index []int }

var fieldCache sync.Map // reflect.Type -> map[string]fieldInfo

// fieldByKey finds the field of struct type t whose toml tag is key.
func fieldByKey(t reflect.Type, key string) (fieldInfo, bool) {
	if t.Kind() != reflect.Struct {
		return fieldInfo{}, false
	}
	m, ok := fieldCache.Load(t)
	if !ok {
		fields := map[string]fieldInfo{}
		for i := 0; i < t.NumField(); i++ {
			if k := tomlKey(t.Field(i)); k != "" && k != "-" {
				fields[k] = fieldInfo{index: t.Field(i).Index}
			}
		}
		m, _ = fieldCache.LoadOrStore(t, fields)
	}
	fi, ok := m.(map[string]fieldInfo)[key]
	return fi, ok
}
