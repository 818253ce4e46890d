// Package kcmdline reads a kernel command line the way the kernel does
// (lib/cmdline.c next_arg and kernel/params.c parse_args): parameters
// separated by white space outside double quotes, quotes removed from the
// name and the value, and nothing after a bare "--" a kernel parameter.
//
//	params, init, _ := kcmdline.Split(`console=ttyS0 foo="a b" -- single`)
//	// params[1].Name == "foo", params[1].Value == "a b", init == "single"
//	v, set := kcmdline.Last(cmdline, "liveupdate") // the last one wins
//
// u-root's pkg/cmdline reads /proc/cmdline and composes command lines
// (prepare uses its filter); this package is for any string, with the
// kernel's own rules, and is the one place luoinit splits a command line.
package kcmdline

import "strings"

// Param is one kernel parameter.
type Param struct {
	Raw      string // as written, quotes and all
	Name     string // quotes removed
	Value    string // quotes removed; "" when HasValue is false
	HasValue bool   // whether there was a '='
}

// isSpace is the kernel's isspace for the command line.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// next reads the parameter at the start of s (no leading white space) and
// returns it and the rest of s after the white space that follows it.
func next(s string) (Param, string) {
	quoted := s[0] == '"'
	inQuote := quoted
	start := 0
	if quoted {
		start = 1
	}
	i, equals := start, -1
	for ; i < len(s); i++ {
		if isSpace(s[i]) && !inQuote {
			break
		}
		if equals < 0 && s[i] == '=' {
			equals = i
		}
		if s[i] == '"' {
			inQuote = !inQuote
		}
	}
	p := Param{Raw: s[:i]}
	body := s[start:i]
	// next_arg drops a closing quote that ends the parameter when the
	// parameter or its value opened with one.
	trimEnd := func(v string) string {
		if len(v) > 0 && v[len(v)-1] == '"' {
			return v[:len(v)-1]
		}
		return v
	}
	if equals < 0 {
		p.Name = body
		if quoted {
			p.Name = trimEnd(p.Name)
		}
	} else {
		p.Name, p.Value, p.HasValue = s[start:equals], s[equals+1:i], true
		if strings.HasPrefix(p.Value, `"`) {
			p.Value = trimEnd(p.Value[1:])
		} else if quoted {
			p.Value = trimEnd(p.Value)
		}
	}
	return p, skipSpaces(s[i:])
}

func skipSpaces(s string) string {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	return s
}

// scan reads the parameters of cmdline in order up to the first "--",
// giving each with the text from it to the end. It returns the text
// after the "--" and whether there was one.
func scan(cmdline string, fn func(p Param, from string)) (init string, hasInit bool) {
	s := skipSpaces(cmdline)
	for len(s) > 0 {
		from := s
		var p Param
		p, s = next(s)
		if !p.HasValue && p.Name == "--" {
			fn(p, from)
			return s, true
		}
		fn(p, from)
	}
	return "", false
}

// Split returns the kernel parameters of cmdline in order, and what
// follows the first "--" (the arguments the kernel passes to init), with
// hasInit saying whether there was one.
func Split(cmdline string) (params []Param, init string, hasInit bool) {
	init, hasInit = scan(cmdline, func(p Param, _ string) {
		if p.HasValue || p.Name != "--" {
			params = append(params, p)
		}
	})
	return params, init, hasInit
}

// Cut returns the text of cmdline before its first "--" and what follows
// it, both as written (without the white space around the "--").
func Cut(cmdline string) (kernel, init string, hasInit bool) {
	kernel = cmdline
	init, hasInit = scan(cmdline, func(p Param, from string) {
		if !p.HasValue && p.Name == "--" {
			kernel = strings.TrimRight(cmdline[:len(cmdline)-len(from)], " \t\n\r\f\v")
		}
	})
	return kernel, init, hasInit
}

// Last returns the value of the last kernel parameter named name: the
// kernel applies each in turn, so the last one counts. A parameter
// without '=' is set with the value "".
func Last(cmdline, name string) (value string, set bool) {
	params, _, _ := Split(cmdline)
	for _, p := range params {
		if p.Name == name {
			value, set = p.Value, true
		}
	}
	return value, set
}
