package manifest

import (
	"strings"
	"testing"
	"time"
)

func TestRecordRoundTrip(t *testing.T) {
	in := Record{
		FirstStopped: Stamp{MonotonicNS: 1_000_000, Realtime: time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)},
		Reboot:       Stamp{MonotonicNS: 1_250_000, Realtime: time.Date(2026, 11, 22, 3, 0, 0, 250000, time.UTC)},
	}
	b, err := MarshalRecord(in)
	if err != nil {
		t.Fatal(err)
	}
	// The memfd is NUL-padded to RecordSize.
	padded := append(b, make([]byte, RecordSize-len(b))...)
	out, err := ParseRecord(padded)
	if err != nil {
		t.Fatal(err)
	}
	if out.Version != Version || out.FirstStopped.MonotonicNS != in.FirstStopped.MonotonicNS ||
		out.Reboot.MonotonicNS != in.Reboot.MonotonicNS || !out.Reboot.Realtime.Equal(in.Reboot.Realtime) {
		t.Fatalf("round trip: %+v, want %+v", out, in)
	}
	var m Manifest
	m.ApplyRecord(out)
	if m.Timing.Blackout() != 250*time.Microsecond {
		t.Fatalf("blackout from the record: %v, want 250µs", m.Timing.Blackout())
	}
}

func TestRecordRejects(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"", "empty"},
		{"\x00\x00\x00", "empty"},
		{"version = 2\n", "newer luoinit"},
		{"version = 0\n", "version 0"},
		{"version = 1\nextra = 3\n", "unknown key \"extra\""},
		{"version = \n", "freeze record"},
	} {
		if _, err := ParseRecord([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseRecord(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}
