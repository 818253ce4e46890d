package handoff

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/luoinit/luoinit/wellknown"
)

// seedMessages has one or more valid messages of every type.
var seedMessages = []message{
	{typ: typeHello, hello: Hello{Version: 1, Direction: DirectionPush, Workload: "kv"}},
	{typ: typeHello, hello: Hello{Version: 1, Direction: DirectionPull, Workload: strings.Repeat("w", MaxWorkloadLen)}},
	{typ: typeFDs, names: []string{"heap"}},
	{typ: typeFDs, names: []string{"a", "b", "c.d", "élan", strings.Repeat("n", MaxNameLen)}},
	{typ: typeFDs, names: names(MaxBatch, MaxNameLen)},
	{typ: typeDone, count: 0},
	{typ: typeDone, count: MaxFiles},
	{typ: typeAck, ok: true},
	{typ: typeAck, fd: "heap", text: "preserve: device or resource busy"},
	{typ: typeAck, text: "no such workload"},
	{typ: typeAck, fd: "x", text: strings.Repeat("t", MaxTextLen)},
	{typ: typeError, text: "unsupported protocol version"},
}

// names makes n distinct names of length l.
func names(n, l int) []string {
	s := make([]string, n)
	for i := range s {
		p := strings.Repeat("x", l-2)
		s[i] = p + string(rune('a'+i/26)) + string(rune('a'+i%26))
	}
	return s
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, m := range seedMessages {
		b, err := encodeMessage(&m)
		if err != nil {
			t.Errorf("encode %v: %v", m.typ, err)
			continue
		}
		got, err := decodeMessage(b)
		if err != nil {
			t.Errorf("decode %v: %v", m.typ, err)
			continue
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("decode(encode(%+v)) = %+v", m, got)
		}
	}
}

// TestGoldenBytes pins the layout docs/handoff.md shows.
func TestGoldenBytes(t *testing.T) {
	for _, tc := range []struct {
		m   message
		hex string
	}{
		{message{typ: typeHello, hello: Hello{Version: 1, Direction: DirectionPull, Workload: "kv"}},
			"4c554f48" + "0100" + "0100" + "06000000" + "0100" + "02" + "02" + "6b76"},
		{message{typ: typeFDs, names: []string{"heap", "idx"}},
			"4c554f48" + "0100" + "0200" + "0b000000" + "0200" + "04" + "68656170" + "03" + "696478"},
		{message{typ: typeDone, count: 2},
			"4c554f48" + "0100" + "0300" + "04000000" + "02000000"},
		{message{typ: typeAck, ok: true},
			"4c554f48" + "0100" + "0400" + "04000000" + "00" + "00" + "0000"},
		{message{typ: typeAck, fd: "heap", text: "busy"},
			"4c554f48" + "0100" + "0400" + "0c000000" + "01" + "04" + "0400" + "68656170" + "62757379"},
		{message{typ: typeError, text: "no"},
			"4c554f48" + "0100" + "0500" + "02000000" + "6e6f"},
	} {
		b, err := encodeMessage(&tc.m)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(b); got != tc.hex {
			t.Errorf("%v: encoded %s, want %s", tc.m.typ, got, tc.hex)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	long := strings.Repeat("n", MaxNameLen+1)
	ack := func(status byte, fd, text string) []byte {
		p := []byte{status, byte(len(fd)), byte(len(text)), byte(len(text) >> 8)}
		return append(append(p, fd...), text...)
	}
	for _, tc := range []struct {
		desc string
		b    []byte
		want string
		is   error
	}{
		{"empty", nil, "shorter than the 12-byte header", ErrProtocol},
		{"short header", msg(typeDone, donePayload(1))[:11], "shorter than the 12-byte header", ErrProtocol},
		{"wrong magic", frame(0x12345678, 1, 3, 4, donePayload(0)), "bad magic 0x12345678", ErrProtocol},
		{"newer version", frame(Magic, 2, 3, 4, donePayload(0)), "peer speaks version 2, this side speaks version 1", ErrVersion},
		{"version 0", frame(Magic, 0, 3, 4, donePayload(0)), "header version 0", ErrProtocol},
		{"payload too long", frame(Magic, 1, 5, MaxPayload+1, []byte("x")), "32769 payload bytes (at most 32768)", ErrProtocol},
		{"length longer than message", frame(Magic, 1, 3, 8, donePayload(0)), "says 8 payload bytes, the message has 4", ErrProtocol},
		{"length shorter than message", frame(Magic, 1, 3, 2, donePayload(0)), "says 2 payload bytes, the message has 4", ErrProtocol},
		{"unknown type", msg(9, nil), "unknown message type 9", ErrProtocol},
		{"type 0", msg(0, nil), "unknown message type 0", ErrProtocol},

		{"HELLO short", msg(typeHello, []byte{1, 0, 1}), "HELLO payload of 3 bytes", ErrProtocol},
		{"HELLO version differs", msg(typeHello, hello(2, 1, "kv")), "HELLO version 2 differs from header version 1", ErrProtocol},
		{"HELLO direction 0", msg(typeHello, hello(1, 0, "kv")), "HELLO direction 0", ErrProtocol},
		{"HELLO direction 3", msg(typeHello, hello(1, 3, "kv")), "HELLO direction 3", ErrProtocol},
		{"HELLO empty workload", msg(typeHello, hello(1, 1, "")), `workload name "" is empty`, ErrProtocol},
		{"HELLO workload too long", msg(typeHello, hello(1, 1, strings.Repeat("w", 64))), "64 bytes long (at most 55, ", ErrProtocol},
		{"HELLO workload with slash", msg(typeHello, hello(1, 1, "a/b")), "contains '/'", ErrProtocol},
		{"HELLO workload with NUL", msg(typeHello, hello(1, 1, "a\x00b")), "contains a NUL byte", ErrProtocol},
		{"HELLO length byte past payload", msg(typeHello, []byte{1, 0, 1, 5, 'k', 'v'}), "for a 5-byte workload name", ErrProtocol},
		{"HELLO trailing byte", msg(typeHello, append(hello(1, 1, "kv"), 0)), "for a 2-byte workload name (want 6)", ErrProtocol},

		{"FDS no count", msg(typeFDs, []byte{1}), "FDS payload of 1 bytes", ErrProtocol},
		{"FDS zero names", msg(typeFDs, fdsPayload()), "FDS with 0 names", ErrProtocol},
		{"FDS 65 names", msg(typeFDs, fdsPayload(names(65, 3)...)), "FDS with 65 names (1 to 64)", ErrProtocol},
		// A length byte cannot say more than 255: a longer name leaves bytes over.
		{"FDS name of 256 bytes", msg(typeFDs, append([]byte{1, 0, 255}, long...)), "1 bytes after its 1 names", ErrProtocol},
		{"FDS name past payload", msg(typeFDs, append([]byte{1, 0, 255}, long[:100]...)), "255 bytes at offset 3 run past the payload", ErrProtocol},
		{"FDS empty name", msg(typeFDs, fdsPayload("a", "")), `FDS name 2 of 2: fd name "" is empty`, ErrProtocol},
		{"FDS name with slash", msg(typeFDs, fdsPayload("../etc")), "contains '/'", ErrProtocol},
		{"FDS name dot-dot", msg(typeFDs, fdsPayload("..")), `".." is not allowed`, ErrProtocol},
		{"FDS name with NUL", msg(typeFDs, fdsPayload("a\x00")), "NUL", ErrProtocol},
		{"FDS duplicate", msg(typeFDs, fdsPayload("a", "b", "a")), `duplicate fd name "a"`, ErrProtocol},
		{"FDS fewer names than count", msg(typeFDs, fdsPayload("a", "b")[:4]), "ends before name 2 of 2", ErrProtocol},
		{"FDS trailing bytes", msg(typeFDs, append(fdsPayload("a"), 'x')), "1 bytes after its 1 names", ErrProtocol},

		{"DONE short", msg(typeDone, []byte{1, 0, 0}), "DONE payload of 3 bytes", ErrProtocol},
		{"DONE long", msg(typeDone, []byte{1, 0, 0, 0, 0}), "DONE payload of 5 bytes", ErrProtocol},
		{"DONE above limit", msg(typeDone, donePayload(MaxFiles+1)), fmt.Sprintf("DONE count %d", MaxFiles+1), ErrProtocol},

		{"ACK short", msg(typeAck, []byte{0, 0, 0}), "ACK payload of 3 bytes", ErrProtocol},
		{"ACK ok with text", msg(typeAck, ack(0, "", "x")), "ACK ok with an fd name or text", ErrProtocol},
		{"ACK ok with fd", msg(typeAck, ack(0, "a", "")), "ACK ok with an fd name or text", ErrProtocol},
		{"ACK bad status", msg(typeAck, ack(2, "", "x")), "ACK status 2", ErrProtocol},
		{"ACK error without text", msg(typeAck, ack(1, "a", "")), "empty ACK error text", ErrProtocol},
		{"ACK error bad fd", msg(typeAck, ack(1, "a/b", "x")), "contains '/'", ErrProtocol},
		{"ACK error text too long", msg(typeAck, ack(1, "", strings.Repeat("t", MaxTextLen+1))), "4097 bytes long", ErrProtocol},
		{"ACK lengths disagree", msg(typeAck, append(ack(1, "a", "x"), 'y')), "ACK payload of 7 bytes", ErrProtocol},

		{"ERROR empty", msg(typeError, nil), "empty ERROR text", ErrProtocol},
		{"ERROR with NUL", msg(typeError, []byte("bad\x00")), "ERROR text contains a NUL byte", ErrProtocol},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			m, err := decodeMessage(tc.b)
			if err == nil {
				t.Fatalf("decoded %+v, want an error", m)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("error %q is not %v", err, tc.is)
			}
		})
	}
}

func TestEncodeRejects(t *testing.T) {
	for _, tc := range []struct {
		desc string
		m    message
		want string
	}{
		{"HELLO version 2", message{typ: typeHello, hello: Hello{Version: 2, Direction: DirectionPush, Workload: "kv"}}, "unsupported protocol version 2"},
		{"HELLO no direction", message{typ: typeHello, hello: Hello{Version: 1, Workload: "kv"}}, "direction(0)"},
		{"HELLO bad workload", message{typ: typeHello, hello: Hello{Version: 1, Direction: DirectionPull, Workload: "."}}, `"." is not allowed`},
		{"FDS empty", message{typ: typeFDs}, "FDS with 0 names"},
		{"FDS 65", message{typ: typeFDs, names: names(65, 2)}, "FDS with 65 names"},
		{"FDS duplicate", message{typ: typeFDs, names: []string{"a", "a"}}, "duplicate"},
		{"DONE too many", message{typ: typeDone, count: MaxFiles + 1}, fmt.Sprintf("DONE count %d", MaxFiles+1)},
		{"ACK ok with text", message{typ: typeAck, ok: true, text: "x"}, "ACK ok with"},
		{"ACK error empty", message{typ: typeAck}, "empty ACK error text"},
		{"ERROR empty", message{typ: typeError}, "empty ERROR text"},
		{"unknown", message{typ: 42}, "unknown message type 42"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			b, err := encodeMessage(&tc.m)
			if err == nil {
				t.Fatalf("encoded %x, want an error", b)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestLargestMessageFits(t *testing.T) {
	b, err := encodeMessage(&message{typ: typeFDs, names: names(MaxBatch, MaxNameLen)})
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > HeaderSize+MaxPayload {
		t.Errorf("a full FDS message is %d bytes, more than %d", len(b), HeaderSize+MaxPayload)
	}
	if _, err := decodeMessage(b); err != nil {
		t.Error(err)
	}
}

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"heap", true},
		{"a", true},
		{"with space and ünïcode", true},
		{".hidden", true},
		{"...", true},
		{strings.Repeat("n", 255), true},
		{strings.Repeat("n", 256), false},
		{"", false},
		{".", false},
		{"..", false},
		{"a/b", false},
		{"/", false},
		{"a\x00", false},
		{"a:b", false},
		{"line\nbreak", false},
		{"del\x7f", false},
		{"\xff\xfe", false},
	} {
		if err := ValidateName(tc.name); (err == nil) != tc.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"kv", true},
		{"kv-2.cache_x", true},
		{strings.Repeat("w", MaxWorkloadLen), true},
		{strings.Repeat("w", MaxWorkloadLen+1), false},
		{"", false},
		{".", false},
		{"..", false},
		{"a/b", false},
		{"a b", false},
		{"é", false},
		{"a\x00", false},
	} {
		err := ValidateWorkload(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateWorkload(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateWorkload(%q) = %v, not ErrInvalidName", tc.name, err)
		}
	}
	// The longest workload name makes the longest session name LUO takes.
	if n := len(wellknown.SessionPrefix) + MaxWorkloadLen; n != 63 {
		t.Errorf("session name of the longest workload is %d bytes, LUO takes 63", n)
	}
}

func TestCleanText(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"", "error"},
		{"a\x00b", "a?b"},
		{strings.Repeat("x", MaxTextLen+10), strings.Repeat("x", MaxTextLen)},
		// A 2-byte rune across the limit is dropped whole.
		{strings.Repeat("x", MaxTextLen-1) + "é", strings.Repeat("x", MaxTextLen-1)},
		{strings.Repeat("x", MaxTextLen-2) + "é", strings.Repeat("x", MaxTextLen-2) + "é"},
	} {
		got := cleanText(tc.in)
		if got != tc.want {
			t.Errorf("cleanText(%.20q... %d bytes) = %d bytes %.20q..., want %d bytes", tc.in, len(tc.in), len(got), got, len(tc.want))
		}
		if err := validateText("text", got); err != nil {
			t.Errorf("cleanText gave invalid text: %v", err)
		}
	}
	if !bytes.Equal([]byte(cleanText("ok")), []byte("ok")) {
		t.Error("cleanText changed a clean text")
	}
}
