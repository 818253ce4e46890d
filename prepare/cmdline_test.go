package prepare

import (
	"testing"

	"github.com/luoinit/luoinit/manifest"
)

func TestCmdline(t *testing.T) {
	for _, tc := range []struct {
		current string
		reuse   bool
		extra   string
		want    string
	}{
		{"console=ttyS0 liveupdate=on quiet", true, "", "console=ttyS0 quiet liveupdate=on kho=on luoinit.update=3"},
		{"console=ttyS0 quiet", false, "console=tty0", "console=tty0 liveupdate=on kho=on luoinit.update=3"},
		{"BOOT_IMAGE=/vmlinuz root=/dev/vda initrd=/initrd.img", true, "luotest.stage=2", "root=/dev/vda luotest.stage=2 liveupdate=on kho=on luoinit.update=3"},
		{"liveupdate=off console=ttyS0", true, "", "console=ttyS0 liveupdate=on kho=on luoinit.update=3"},
		{"", false, "", "liveupdate=on kho=on luoinit.update=3"},
		{"a=1", true, "liveupdate", "a=1 liveupdate=on kho=on luoinit.update=3"},
		{"kho=off a=1", true, "kho=0 kho_scratch=64M", "a=1 kho_scratch=64M liveupdate=on kho=on luoinit.update=3"},
		{"liveupdate=on", false, "liveupdate=off", "liveupdate=on kho=on luoinit.update=3"},
		// A quoted parameter with a space survives as one parameter.
		{`console=ttyS0 dyndbg="file luo.c +p" kho=off`, true, `"foo=a b"`, `console=ttyS0 dyndbg="file luo.c +p" "foo=a b" liveupdate=on kho=on luoinit.update=3`},
		{`a="kho=off b"`, true, "", `a="kho=off b" liveupdate=on kho=on luoinit.update=3`},
		// What follows "--" is init's: kept as it is, after the ensured ones.
		{"quiet -- single kho=off", true, "", "quiet liveupdate=on kho=on luoinit.update=3 -- single kho=off"},
		{"quiet", true, "-- single", "quiet liveupdate=on kho=on luoinit.update=3 -- single"},
		{"quiet --", false, "", "liveupdate=on kho=on luoinit.update=3"},
		{"", false, "quiet --  ", "quiet liveupdate=on kho=on luoinit.update=3 --"},
		{"initrd=/i BOOT_IMAGE=/b", true, "", "liveupdate=on kho=on luoinit.update=3"},
		// The marker of the last live update gives way to this one's.
		{"luoinit.update=2 quiet", true, "luoinit.update=9", "quiet liveupdate=on kho=on luoinit.update=3"},
	} {
		if got := Cmdline(tc.current, tc.reuse, tc.extra, 3); got != tc.want {
			t.Errorf("Cmdline(%q, %v, %q) = %q, want %q", tc.current, tc.reuse, tc.extra, got, tc.want)
		}
	}
}

func TestNextGeneration(t *testing.T) {
	for _, tc := range []struct {
		prev    uint64 // 0: no manifest
		cmdline string
		want    uint64
	}{
		{0, "console=ttyS0", 1},
		{3, "console=ttyS0 luoinit.update=3", 4},
		// The manifest did not come back: the marker still counts.
		{0, "luoinit.update=5 liveupdate=on", 6},
		{7, "luoinit.update=2", 8},
		{0, "luoinit.update=x", 1},
	} {
		var prev *manifest.Manifest
		if tc.prev > 0 {
			prev = &manifest.Manifest{Generation: tc.prev}
		}
		if got := nextGeneration(prev, tc.cmdline); got != tc.want {
			t.Errorf("nextGeneration(%d, %q) = %d, want %d", tc.prev, tc.cmdline, got, tc.want)
		}
	}
}
