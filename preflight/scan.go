package preflight

import (
	"bytes"
	"compress/gzip"
	"io"
	"regexp"
	"strings"
	"sync"
)

// ABI is one versioned format of the state a kernel hands to the next
// through KHO: the compatible string the writing kernel stores and the
// reading kernel compares (include/linux/kho/abi/*.h). A kernel that reads
// another version refuses the state, and with LUO's that is everything
// preserved.
type ABI struct {
	Name   string // what the state is, for messages: "LUO"
	Prefix string // the compatible string without its version: "luo-v"
	Define string // the kernel's name for it: LUO_ABI_COMPATIBLE
	// Required: a kernel without it cannot carry luoinit's state at all.
	Required bool
}

// ABIs are the compatible strings the preflight compares, in report order.
var ABIs = []ABI{
	{Name: "KHO", Prefix: "kho-v", Define: "KHO_FDT_COMPATIBLE", Required: true},
	{Name: "LUO", Prefix: "luo-v", Define: "LUO_ABI_COMPATIBLE", Required: true},
	{Name: "memfd", Prefix: "memfd-v", Define: "MEMFD_LUO_FH_COMPATIBLE", Required: true},
	{Name: "memblock", Prefix: "memblock-v", Define: "MEMBLOCK_KHO_NODE_COMPATIBLE"},
	{Name: "reserve_mem", Prefix: "reserve-mem-v", Define: "RESERVE_MEM_KHO_NODE_COMPATIBLE"},
}

// compatRE is a whole compatible string: one of the prefixes and a
// version. It is compiled when first needed, not at every start of the
// program (of PID 1 too, which rarely scans a kernel).
var compatRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(kho|luo|memfd|memblock|reserve-mem)-v[0-9]{1,4}$`)
})

// Limits of the scanner, so hostile input costs bounded memory.
const (
	maxRun       = 64      // longest printable run examined for a compatible string
	maxIKConfig  = 1 << 20 // compressed in-kernel config (CONFIG_IKCONFIG), ~30 KiB in practice
	maxConfigOut = 4 << 20 // its decompressed size
	maxPerPrefix = 8       // distinct versions kept per prefix
)

var (
	ikcfgStart = []byte("IKCFG_ST")
	ikcfgEnd   = []byte("IKCFG_ED")
)

// scanner is an io.Writer that finds, in a decompressed kernel streamed
// through it, the KHO/LUO compatible strings and the in-kernel config.
//
// A compatible string is a NUL-terminated C string: in .rodata after the
// previous string's NUL, or inline in a structure after a pointer (the
// memfd handler's). The scanner takes every printable run that ends in a
// NUL and matches compatRE whole, or ends in a match after a separator:
// the linker merges a string into the tail of a longer one that ends the
// same way ("luo-v6" into the release "7.3.4-luo-v6" of a kernel built
// with that local version).
// The config (CONFIG_IKCONFIG) is a gzip stream between the markers
// "IKCFG_ST" and "IKCFG_ED" (kernel/configs.c).
type scanner struct {
	found map[string][]string // prefix -> distinct versions, in order seen

	run    [maxRun]byte
	runLen int // bytes in the current printable run (may exceed maxRun)

	ikcfg    []byte // config capture, from after "IKCFG_ST"
	inIKCfg  bool
	ikcfgEnd bool // the capture ended at "IKCFG_ED"
}

func newScanner() *scanner {
	return &scanner{found: map[string][]string{}}
}

func (s *scanner) Write(p []byte) (int, error) {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if s.inIKCfg {
			// Copy in bulk up to the end marker or the cap.
			rest := p[i:]
			room := maxIKConfig - len(s.ikcfg)
			if len(rest) > room {
				rest = rest[:room]
			}
			from := max(0, len(s.ikcfg)-len(ikcfgEnd)+1)
			s.ikcfg = append(s.ikcfg, rest...)
			if j := bytes.Index(s.ikcfg[from:], ikcfgEnd); j >= 0 {
				j += from
				consumed := len(rest) - (len(s.ikcfg) - j - len(ikcfgEnd))
				s.ikcfg = s.ikcfg[:j]
				s.inIKCfg, s.ikcfgEnd = false, true
				// Go on scanning after the end marker.
				i += consumed - 1
				s.runLen = 0
				continue
			}
			if len(s.ikcfg) >= maxIKConfig {
				s.inIKCfg = false // too large: left unread
				s.ikcfg = nil
			}
			i += len(rest) - 1
			continue
		}
		if c >= 0x21 && c <= 0x7e {
			if s.runLen < maxRun {
				s.run[s.runLen] = c
			}
			s.runLen++
			continue
		}
		s.endRun(c)
	}
	return len(p), nil
}

// endRun handles the byte c that ends a printable run.
func (s *scanner) endRun(c byte) {
	if s.runLen > 0 && s.runLen <= maxRun {
		run := s.run[:s.runLen]
		switch {
		case c == 0 && compatRE().Match(run):
			s.add(string(run))
		case c == 0:
			if i := compatTail(run); i > 0 {
				s.add(string(run[i:]))
			}
		case !s.ikcfgEnd && s.ikcfg == nil && bytes.HasSuffix(run, ikcfgStart):
			s.inIKCfg = true
			s.ikcfg = append(make([]byte, 0, 64<<10), c)
		}
	}
	s.runLen = 0
}

// compatTail returns where a compatible string starts at the end of run,
// after a byte that is not a letter or digit; 0 if none does.
func compatTail(run []byte) int {
	for _, a := range ABIs {
		i := bytes.LastIndex(run, []byte(a.Prefix))
		if i <= 0 || isAlnum(run[i-1]) {
			continue
		}
		if compatRE().Match(run[i:]) {
			return i
		}
	}
	return 0
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func (s *scanner) add(compat string) {
	prefix := compat[:strings.LastIndex(compat, "-v")+2]
	for _, v := range s.found[prefix] {
		if v == compat {
			return
		}
	}
	if len(s.found[prefix]) < maxPerPrefix {
		s.found[prefix] = append(s.found[prefix], compat)
	}
}

// config returns the in-kernel config's text, nil if the kernel has none
// (or it is unreadable or over the cap).
func (s *scanner) config() []byte {
	if !s.ikcfgEnd || len(s.ikcfg) == 0 {
		return nil
	}
	z, err := gzip.NewReader(bytes.NewReader(s.ikcfg))
	if err != nil {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(z, maxConfigOut+1))
	if (err != nil && err != io.ErrUnexpectedEOF) || len(b) > maxConfigOut {
		return nil
	}
	return b
}
