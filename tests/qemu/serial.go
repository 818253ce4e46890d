package qemu

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Status is one status line of the firmware guest:
// "vmguest count=<n> pass=<n> bad=<n>", each number 8 hex digits.
type Status struct {
	Count  uint32 // lines printed since the fill, counted in guest RAM
	Passes uint32 // full passes over the pattern
	Bad    uint32 // 4-byte words found wrong, each time they were checked
}

// The other lines of the firmware guest.
const (
	FilledPrefix = "vmguest filled=" // "vmguest filled=<MiB> MiB", once after the fill
	BadAtPrefix  = "vmguest bad at=" // "vmguest bad at=<address>", at the first mismatch
)

// ParseStatus parses a status line; ok is false for any other line.
func ParseStatus(line string) (s Status, ok bool) {
	f := strings.Fields(line)
	if len(f) != 4 || f[0] != "vmguest" {
		return Status{}, false
	}
	fields := []struct {
		key string
		val *uint32
	}{{"count=", &s.Count}, {"pass=", &s.Passes}, {"bad=", &s.Bad}}
	for i, fd := range fields {
		v, found := strings.CutPrefix(f[i+1], fd.key)
		if !found || len(v) != 8 {
			// 8 digits, always: a line cut short (a VM stopped mid-line)
			// does not parse.
			return Status{}, false
		}
		n, err := strconv.ParseUint(v, 16, 32)
		if err != nil {
			return Status{}, false
		}
		*fd.val = uint32(n)
	}
	return s, true
}

// ParseFilled parses the fill line; ok is false for any other line.
func ParseFilled(line string) (mib uint32, ok bool) {
	v, found := strings.CutPrefix(strings.TrimSpace(line), FilledPrefix)
	if !found {
		return 0, false
	}
	v, found = strings.CutSuffix(v, " MiB")
	if !found {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 16, 32)
	return uint32(n), err == nil
}

// Serial reads a guest's serial output line by line, in the background.
type Serial struct {
	lines chan string
	err   error // why the output ended; read after lines is closed
}

// ReadSerial starts reading r (QEMU's -serial stdio, say) until it ends.
func ReadSerial(r io.Reader) *Serial {
	s := &Serial{lines: make(chan string, 1024)}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		s.err = sc.Err()
		if s.err == nil {
			s.err = io.EOF
		}
		close(s.lines)
	}()
	return s
}

// Next returns the next line; an error if none comes within d or the
// output ends first.
func (s *Serial) Next(d time.Duration) (string, error) {
	// A line already read comes first, whatever d.
	select {
	case l, ok := <-s.lines:
		if !ok {
			return "", fmt.Errorf("serial output ended: %w", s.err)
		}
		return l, nil
	default:
	}
	select {
	case l, ok := <-s.lines:
		if !ok {
			return "", fmt.Errorf("serial output ended: %w", s.err)
		}
		return l, nil
	case <-time.After(d):
		return "", fmt.Errorf("no serial line within %v", d)
	}
}

// NextStatus skips to the next status line and returns it with the lines
// it skipped; an error if none comes within d.
func (s *Serial) NextStatus(d time.Duration) (Status, []string, error) {
	deadline := time.Now().Add(d)
	var skipped []string
	for {
		l, err := s.Next(time.Until(deadline))
		if err != nil {
			return Status{}, skipped, fmt.Errorf("waiting for a status line (after %q): %w", skipped, err)
		}
		if st, ok := ParseStatus(l); ok {
			return st, skipped, nil
		}
		skipped = append(skipped, l)
	}
}
