package notify

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse: any bytes give a message or ErrMalformed, never a panic; what
// is accepted respects the limits, and a valid FDNAME is kept as sent.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"READY=1", "READY=1\nSTATUS=ok\n", "FDSTORE=1\nFDNAME=arena\nFDPOLL=0", "FDSTOREREMOVE=1\nFDNAME=x",
		"MAINPID=42", "STOPPING=1\nREADY=1", "STATUS=\xff", "a\x00b", "FDNAME=a:b\nFDSTORE=1", "\r\n\r\n=\n==",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if len(b) > MaxDatagram {
			t.Fatalf("accepted %d bytes", len(b))
		}
		if m.Ready && m.Stopping || m.FDStore && m.FDStoreRemove {
			t.Fatalf("both sides of an exclusive pair: %+v", m)
		}
		if m.FDNameSet {
			if ValidFDName(m.FDName) != nil || !strings.Contains(string(b), "FDNAME="+m.FDName) {
				t.Fatalf("FDNAME %q kept but not valid or not sent", m.FDName)
			}
		}
		if m.MainPID < 0 {
			t.Fatalf("negative MAINPID %d", m.MainPID)
		}
	})
}
