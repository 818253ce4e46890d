package main

import (
	"errors"
	"fmt"
	"strings"
)

// Op is the command of a request.
type Op int

const (
	OpSet Op = iota + 1
	OpGet
	OpDel
	OpCount
	OpStats
	OpPush
	OpQuit
)

// ops maps the command words (any case) to their Op and number of
// arguments.
var ops = map[string]struct {
	op   Op
	args int
}{
	"SET":   {OpSet, 2},
	"GET":   {OpGet, 1},
	"DEL":   {OpDel, 1},
	"COUNT": {OpCount, 0},
	"STATS": {OpStats, 0},
	"PUSH":  {OpPush, 0},
	"QUIT":  {OpQuit, 0},
}

var opNames = map[Op]string{}

func init() {
	for name, o := range ops {
		opNames[o.op] = name
	}
}

func (o Op) String() string {
	if n, ok := opNames[o]; ok {
		return n
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// Request is one parsed request line.
type Request struct {
	Op    Op
	Key   string // SET, GET, DEL
	Value string // SET
}

// String is the request as a line of the protocol, without the newline.
func (r Request) String() string {
	switch r.Op {
	case OpSet:
		return "SET " + r.Key + " " + r.Value
	case OpGet, OpDel:
		return r.Op.String() + " " + r.Key
	}
	return r.Op.String()
}

// maxLine is the longest request line, "\r\n" included.
const maxLine = len("SET ") + maxKeyLen + len(" ") + maxValueLen + len("\r\n")

var errLineTooLong = fmt.Errorf("request line too long (at most %d bytes)", maxLine)

// ParseRequest parses one request line, without its "\n" (a trailing "\r"
// is dropped). Words are separated by one space; the command is any case;
// keys (1 to 255 bytes) and values (1 to 65536 bytes) hold no space and no
// control character, since the protocol could not carry them.
func ParseRequest(line []byte) (Request, error) {
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	if len(line) == 0 {
		return Request{}, errors.New("empty request")
	}
	if len(line) > maxLine {
		return Request{}, errLineTooLong
	}
	words := strings.Split(string(line), " ")
	o, ok := ops[strings.ToUpper(words[0])]
	if !ok {
		return Request{}, fmt.Errorf("unknown command %q (want SET, GET, DEL, COUNT, STATS, PUSH or QUIT)", clip(words[0]))
	}
	if len(words)-1 != o.args {
		return Request{}, fmt.Errorf("%s: %s", o.op, usage(o.op))
	}
	r := Request{Op: o.op}
	if o.args >= 1 {
		r.Key = words[1]
		if err := checkToken("key", r.Key, maxKeyLen); err != nil {
			return Request{}, fmt.Errorf("%s: %w", o.op, err)
		}
	}
	if o.args == 2 {
		r.Value = words[2]
		if err := checkToken("value", r.Value, maxValueLen); err != nil {
			return Request{}, fmt.Errorf("%s: %w", o.op, err)
		}
	}
	return r, nil
}

func usage(o Op) string {
	switch o {
	case OpSet:
		return "want SET key value, separated by single spaces (a value holds no space)"
	case OpGet, OpDel:
		return "want " + o.String() + " key, separated by a single space (a key holds no space)"
	}
	return "takes no argument"
}

// checkToken checks a key or a value of the line protocol.
func checkToken(what, s string, limit int) error {
	if len(s) == 0 {
		return fmt.Errorf("empty %s (words are separated by single spaces)", what)
	}
	if len(s) > limit {
		return fmt.Errorf("%s is %d bytes long, at most %d", what, len(s), limit)
	}
	if i := badByte(s); i >= 0 {
		return fmt.Errorf("%s holds byte %#02x at position %d: keys and values hold no space or control character", what, s[i], i)
	}
	return nil
}

// badByte returns the index of the first byte of s that the line protocol
// cannot carry in a key or a value, or -1.
func badByte(s string) int {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return i
		}
	}
	return -1
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
