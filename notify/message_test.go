package notify

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		desc string
		in   string
		want Message
	}{
		{"ready", "READY=1", Message{Ready: true, FDPoll: true}},
		{"ready with trailing newline and NUL", "READY=1\n\x00", Message{Ready: true, FDPoll: true}},
		{"READY=0 is not ready", "READY=0", Message{FDPoll: true}},
		{"stopping wins over ready", "READY=1\nSTOPPING=1", Message{Stopping: true, FDPoll: true}},
		{"status, first one counts", "STATUS=one\nSTATUS=two", Message{Status: "one", StatusSet: true, FDPoll: true}},
		{"empty status clears it", "STATUS=", Message{StatusSet: true, FDPoll: true}},
		{"status not UTF-8", "STATUS=\xff\nREADY=1", Message{Ready: true, FDPoll: true, Ignored: []string{"STATUS= is not UTF-8"}}},
		{"mainpid", "MAINPID=4711", Message{MainPID: 4711, FDPoll: true}},
		{"mainpid not a number", "MAINPID=12x", Message{FDPoll: true, Ignored: []string{`MAINPID="12x" is not a pid`}}},
		{"mainpid zero", "MAINPID=0", Message{FDPoll: true, Ignored: []string{`MAINPID="0" is not a pid`}}},
		{"fdstore with name and FDPOLL=0", "FDSTORE=1\nFDNAME=arena\nFDPOLL=0",
			Message{FDStore: true, FDName: "arena", FDNameSet: true}},
		{"fdstore, \\r separates too", "FDSTORE=1\rFDNAME=arena", Message{FDStore: true, FDName: "arena", FDNameSet: true, FDPoll: true}},
		{"remove wins over store", "FDSTOREREMOVE=1\nFDSTORE=1\nFDNAME=x", Message{FDStoreRemove: true, FDName: "x", FDNameSet: true, FDPoll: true}},
		{"empty name is valid", "FDSTORE=1\nFDNAME=", Message{FDStore: true, FDNameSet: true, FDPoll: true}},
		{"name with a colon is ignored", "FDSTORE=1\nFDNAME=a:b",
			Message{FDStore: true, FDPoll: true, Ignored: []string{`FDNAME="a:b" has byte 0x3a at offset 1: only printable ASCII other than ':' is allowed`}}},
		{"unknown assignments and junk skipped", "X_FOO=bar\nWATCHDOG=1\njunk\n\n\nREADY=1\n", Message{Ready: true, FDPoll: true}},
		{"empty datagram", "", Message{FDPoll: true}},
		{"keys are case sensitive", "ready=1", Message{FDPoll: true}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatalf("Parse(%q) = %v", tc.in, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Parse(%q) =\n %+v\nwant\n %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct {
		desc, in, says string
	}{
		{"too long", "STATUS=" + strings.Repeat("x", MaxDatagram), "4103 bytes"},
		{"embedded NUL", "READY=1\x00STATUS=x", "NUL byte at offset 7"},
		{"two trailing NULs", "READY=1\x00\x00", "NUL byte at offset 7"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Parse = %v, want ErrMalformed saying %q", err, tc.says)
			}
		})
	}
	if _, err := Parse([]byte(strings.Repeat("x", MaxDatagram))); err != nil {
		t.Fatalf("a datagram of exactly %d bytes: %v", MaxDatagram, err)
	}
}

func TestValidFDName(t *testing.T) {
	for name, ok := range map[string]bool{
		"":                       true,
		"arena":                  true,
		"with space ~!":          true,
		strings.Repeat("a", 255): true,
		strings.Repeat("a", 256): false,
		"a:b":                    false,
		"tab\there":              false,
		"del\x7f":                false,
		"caf\xc3\xa9":            false,
		"new\nline":              false,
	} {
		if err := ValidFDName(name); (err == nil) != ok {
			t.Errorf("ValidFDName(%q) = %v, want ok %v", name, err, ok)
		}
	}
}
