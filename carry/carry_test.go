package carry

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestReadSealed(t *testing.T) {
	data := []byte("version = 1\ngeneration = 2\n")
	tests := []struct {
		name  string
		seals int  // seals added to an unsealed memfd
		whole bool // made by Sealed
		max   int64
		want  string // error substring; "" reads data back
	}{
		{"sealed", 0, true, 1 << 20, ""},
		{"unsealed", 0, false, 1 << 20, "missing F_SEAL_WRITE|F_SEAL_GROW|F_SEAL_SHRINK|F_SEAL_SEAL"},
		{"write seal missing", unix.F_SEAL_GROW | unix.F_SEAL_SHRINK | unix.F_SEAL_SEAL, false, 1 << 20, "missing F_SEAL_WRITE"},
		{"seal seal missing", unix.F_SEAL_WRITE | unix.F_SEAL_GROW | unix.F_SEAL_SHRINK, false, 1 << 20, "missing F_SEAL_SEAL"},
		{"too large", 0, true, 8, "more than the 8 allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mk := Memfd
			if tc.whole {
				mk = Sealed
			}
			f, err := mk("test", data)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if tc.seals != 0 {
				if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, tc.seals); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ReadSealed(f, tc.max)
			if tc.want == "" {
				if err != nil || string(got) != string(data) {
					t.Fatalf("ReadSealed = %q, %v; want %q", got, err, data)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ReadSealed error %v, want %q", err, tc.want)
			}
		})
	}
}

// A sealed memfd refuses writes and size changes.
func TestSealedIsReadOnly(t *testing.T) {
	f, err := Sealed("test", []byte("abc"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("x"), 0); err == nil {
		t.Error("write to a sealed memfd succeeded")
	}
	if err := f.Truncate(1); err == nil {
		t.Error("truncate of a sealed memfd succeeded")
	}
}
