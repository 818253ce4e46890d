package manifest

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"
)

// parse decodes data into v (a *Config or a *Manifest) and validates it.
// Every problem found comes back, each on its own line, with the line of
// data it is about where that can be found.
//
// Decoding goes one table and one key at a time (through toml.Primitive)
// rather than in one toml.Decode call: so a type error names the workload
// and fd it is in, every type error is reported rather than the first, keys
// match exactly (the decoder would also take "Name" for "name"), and
// presence is known (a config must not set "token = 0" either).
//
// Before the TOML library sees the data, its size and shape are checked
// against the limits in lines.go: the library's memory is not bounded by
// its input's size.
func parse(file string, data []byte, v any, isManifest bool) error {
	if len(data) > MaxFileSize {
		return errors.Join(tooLarge(file))
	}
	if fastParse(data, v, isManifest) {
		return nil
	}
	return fullParse(file, data, v, isManifest)
}

// fullParse is parse without the fast path: the TOML library reads data,
// after the limits, and every problem is reported with its line.
func fullParse(file string, data []byte, v any, isManifest bool) error {
	if len(data) > MaxFileSize {
		return errors.Join(tooLarge(file))
	}
	lines, limit := scan(data)
	if limit != nil {
		limit.file = file
		return errors.Join(limit)
	}
	var top map[string]toml.Primitive
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&top)
	if err != nil {
		p := &problem{file: file, text: "syntax error: " + shorten(err.Error(), 200), err: err}
		var pe toml.ParseError
		if errors.As(err, &pe) {
			p.line = pe.Position.Line
			p.text = "syntax error: " + shortenText(pe.Message, 200)
		}
		return errors.Join(p)
	}
	d := &decoder{md: &md, present: map[string]bool{}, failed: map[string]bool{}}
	rv := reflect.ValueOf(v).Elem()
	d.fields(top, rv, "")

	version := int(rv.FieldByName("Version").Int())
	var probs []*problem
	if version > Version && !d.failedAt("version") {
		// A newer format may mean anything: say only that.
		probs = []*problem{versionProblem(version, isManifest)}
	} else {
		c := &checker{present: func(path string) bool { return d.present[path] }}
		if isManifest {
			c.manifest(v.(*Manifest))
		} else {
			c.config(v.(*Config))
		}
		probs = d.probs
		for _, p := range c.probs {
			if !d.covers(p) {
				probs = append(probs, p)
			}
		}
	}
	if len(probs) == 0 {
		return nil
	}
	for _, p := range probs {
		p.file = file
		p.line = lines.find(p.path)
		if p.ref != "" {
			p.refLn = lines.find(p.ref)
		}
	}
	return joinProblems(probs)
}

// fastParse decodes and validates data into v through the fast path (see
// fast.go) and reports whether it could. v is left untouched when not: the
// full parser then reads data and says what is wrong with it.
func fastParse(data []byte, v any, isManifest bool) bool {
	rv := reflect.ValueOf(v).Elem()
	nv := reflect.New(rv.Type())
	present, ok := fastDecode(data, nv.Interface())
	if !ok {
		return false
	}
	c := &checker{present: func(path string) bool { return present[path] }}
	if isManifest {
		c.manifest(nv.Interface().(*Manifest))
	} else {
		c.config(nv.Interface().(*Config))
	}
	if len(c.probs) > 0 {
		return false
	}
	rv.Set(nv.Elem())
	return true
}

// decoder fills a struct from TOML tables, key by key.
type decoder struct {
	md      *toml.MetaData
	probs   []*problem
	present map[string]bool // field paths set in the file
	failed  map[string]bool // field paths that could not be decoded
}

var (
	timeType            = reflect.TypeFor[time.Time]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	primitivesType      = reflect.TypeFor[[]toml.Primitive]()
)

// fields decodes the keys of one table into the struct rv.
func (d *decoder) fields(table map[string]toml.Primitive, rv reflect.Value, path string) {
	t := rv.Type()
	known := make(map[string]bool, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		key := tomlKey(t.Field(i))
		known[key] = true
		prim, ok := table[key]
		if !ok {
			continue
		}
		fp := joinPath(path, key)
		d.present[fp] = true
		d.value(prim, rv.Field(i), fp)
	}
	var unknown []string
	for key := range table {
		if !known[key] {
			unknown = append(unknown, key)
		}
	}
	sort.Strings(unknown)
	for _, key := range unknown {
		fp := joinPath(path, quoteKey(key))
		d.probs = append(d.probs, &problem{path: fp, ctx: fp, text: "unknown key"})
	}
}

// value decodes one TOML value into the field fv.
func (d *decoder) value(prim toml.Primitive, fv reflect.Value, path string) {
	ft := fv.Type()
	switch {
	case ft == timeType:
		d.time(prim, fv, path)
	case reflect.PointerTo(ft).Implements(textUnmarshalerType):
		d.leaf(prim, fv, path)
	case ft.Kind() == reflect.Struct:
		// The decoder takes any value as an empty table: check first.
		var raw any
		if err := d.md.PrimitiveDecode(prim, &raw); err != nil {
			d.fail(path, err)
			return
		}
		if _, ok := raw.(map[string]any); !ok {
			d.fail(path, fmt.Errorf("needs a table, not %s", tomlTypeName(raw)))
			return
		}
		var table map[string]toml.Primitive
		if err := d.md.PrimitiveDecode(prim, &table); err != nil {
			d.fail(path, err)
			return
		}
		d.fields(table, fv, path)
	case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
		var raw any
		if err := d.md.PrimitiveDecode(prim, &raw); err != nil {
			d.fail(path, err)
			return
		}
		switch raw.(type) {
		case []map[string]any, []any:
		default:
			d.fail(path, fmt.Errorf("needs an array of tables, not %s", tomlTypeName(raw)))
			return
		}
		var elems []toml.Primitive
		if err := d.md.PrimitiveDecode(prim, &elems); err != nil {
			d.fail(path, err)
			return
		}
		if len(elems) == 0 {
			return
		}
		s := reflect.MakeSlice(ft, len(elems), len(elems))
		for i, e := range elems {
			d.value(e, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		fv.Set(s)
	default:
		d.leaf(prim, fv, path)
		if fv.Kind() == reflect.Slice && fv.Len() == 0 {
			fv.Set(reflect.Zero(ft)) // empty and absent are the same
		}
	}
}

// leaf decodes a string, number, boolean or array of them. Its TOML type
// and range are checked here first, so that a mistake is told in TOML's
// words ("needs a string, not an integer") rather than the decoder's,
// which names Go types.
func (d *decoder) leaf(prim toml.Primitive, fv reflect.Value, path string) {
	var raw any
	if err := d.md.PrimitiveDecode(prim, &raw); err != nil {
		d.fail(path, err)
		return
	}
	if at, why := mismatch(raw, fv.Type()); why != "" {
		d.fail(path+at, errors.New(why))
		d.failed[path] = true // the whole field stays unset
		return
	}
	if err := d.md.PrimitiveDecode(prim, fv.Addr().Interface()); err != nil {
		d.fail(path, err)
	}
}

// mismatch says why raw, a decoded TOML value, does not fit a field of
// type ft, and at which element of an array ("[2]"); "" if it fits.
func mismatch(raw any, ft reflect.Type) (at, why string) {
	want := tomlTypeFor(ft)
	if ft.Kind() == reflect.Pointer {
		ft = ft.Elem()
	}
	switch {
	case reflect.PointerTo(ft).Implements(textUnmarshalerType), ft.Kind() == reflect.String:
		if _, ok := raw.(string); ok {
			return "", ""
		}
	case ft.Kind() == reflect.Bool:
		if _, ok := raw.(bool); ok {
			return "", ""
		}
	case ft.Kind() >= reflect.Int && ft.Kind() <= reflect.Uint64:
		n, ok := raw.(int64)
		if !ok {
			break
		}
		z := reflect.New(ft).Elem()
		if z.CanUint() && (n < 0 || z.OverflowUint(uint64(n))) {
			return "", fmt.Sprintf("%d is out of range: it must be 0 to %d", n, uint64(1)<<(ft.Bits())-1)
		}
		if z.CanInt() && z.OverflowInt(n) {
			return "", fmt.Sprintf("%d is out of range: it must be %d to %d", n, -(int64(1) << (ft.Bits() - 1)), int64(1)<<(ft.Bits()-1)-1)
		}
		return "", ""
	case ft.Kind() == reflect.Slice:
		elems, ok := raw.([]any)
		if !ok {
			break
		}
		for i, e := range elems {
			if eat, why := mismatch(e, ft.Elem()); why != "" {
				return fmt.Sprintf("[%d]%s", i, eat), why
			}
		}
		return "", ""
	}
	return "", fmt.Sprintf("needs %s, not %s", want, tomlTypeName(raw))
}

// tomlTypeFor names the TOML type a field of type ft takes.
func tomlTypeFor(ft reflect.Type) string {
	if ft.Kind() == reflect.Pointer {
		ft = ft.Elem()
	}
	switch {
	case ft == timeType:
		return "a date-time"
	case reflect.PointerTo(ft).Implements(textUnmarshalerType), ft.Kind() == reflect.String:
		return "a string"
	case ft.Kind() == reflect.Bool:
		return "a boolean"
	case ft.Kind() >= reflect.Int && ft.Kind() <= reflect.Uint64:
		return "an integer"
	case ft.Kind() == reflect.Slice:
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(tomlTypeFor(ft.Elem()), "a "), "an ") + "s"
	case ft.Kind() == reflect.Struct:
		return "a table"
	}
	return "another type"
}

// time takes a TOML offset date-time and keeps it in UTC. Local dates and
// times are refused: their meaning would depend on the reader's time zone.
func (d *decoder) time(prim toml.Primitive, fv reflect.Value, path string) {
	var v any
	if err := d.md.PrimitiveDecode(prim, &v); err != nil {
		d.fail(path, err)
		return
	}
	t, ok := v.(time.Time)
	if !ok {
		d.fail(path, fmt.Errorf("needs a date-time like 2025-01-02T03:04:05Z, not %s", tomlTypeName(v)))
		return
	}
	switch t.Location().String() {
	case "datetime-local", "date-local", "time-local":
		d.fail(path, errors.New("needs a date-time with a UTC offset, like 2025-01-02T03:04:05Z"))
		return
	}
	t = t.UTC()
	if t.Year() < 0 || t.Year() > 9999 {
		d.fail(path, errors.New("date-time out of range in UTC"))
		return
	}
	fv.Set(reflect.ValueOf(t))
}

// tomlPrefix is what the toml package puts before its type errors: a line
// that is not always the right one, and a key without array indices. It
// is compiled when first needed: only a manifest with an error does.
var tomlPrefix = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^toml: (line \d+ )?(\(last key "(?:[^"\\]|\\.)*"\): )?`)
})

func (d *decoder) fail(path string, err error) {
	text := err.Error()
	var pe toml.ParseError
	if errors.As(err, &pe) {
		text = pe.Message
	} else {
		text = tomlPrefix().ReplaceAllString(text, "")
	}
	d.probs = append(d.probs, &problem{path: path, ctx: path, text: text, err: err})
	d.failed[path] = true
}

// failedAt reports whether path, or a table holding it, failed to decode.
func (d *decoder) failedAt(path string) bool {
	for ; path != ""; path = parentPath(path) {
		if d.failed[path] {
			return true
		}
	}
	return false
}

// covers reports whether a validation problem follows from a value that
// did not decode (and so was left zero): such a problem is not reported.
func (d *decoder) covers(p *problem) bool {
	if d.failedAt(p.path) {
		return true
	}
	for _, dep := range p.deps {
		if d.failedAt(dep) {
			return true
		}
	}
	return false
}

func tomlKey(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	return name
}

func tomlTypeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date-time"
	}
	return "a value of another type"
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// quoteKey writes a key as TOML would need it: bare if it can be.
func quoteKey(k string) string {
	if k != "" && strings.IndexFunc(k, func(r rune) bool { return !isBareKeyChar(r) }) < 0 {
		return k
	}
	return fmt.Sprintf("%q", k)
}

func isBareKeyChar(r rune) bool {
	return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-'
}
