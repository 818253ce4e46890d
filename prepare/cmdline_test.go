package prepare

import "testing"

func TestCmdline(t *testing.T) {
	for _, tc := range []struct {
		current string
		reuse   bool
		extra   string
		want    string
	}{
		{"console=ttyS0 liveupdate=on quiet", true, "", "console=ttyS0 quiet liveupdate=on kho=on"},
		{"console=ttyS0 quiet", false, "console=tty0", "console=tty0 liveupdate=on kho=on"},
		{"BOOT_IMAGE=/vmlinuz root=/dev/vda initrd=/initrd.img", true, "luotest.stage=2", "root=/dev/vda luotest.stage=2 liveupdate=on kho=on"},
		{"liveupdate=off console=ttyS0", true, "", "console=ttyS0 liveupdate=on kho=on"},
		{"", false, "", "liveupdate=on kho=on"},
		{"a=1", true, "liveupdate", "a=1 liveupdate=on kho=on"},
		{"kho=off a=1", true, "kho=0 kho_scratch=64M", "a=1 kho_scratch=64M liveupdate=on kho=on"},
		{"liveupdate=on", false, "liveupdate=off", "liveupdate=on kho=on"},
		// A quoted parameter with a space survives as one parameter.
		{`console=ttyS0 dyndbg="file luo.c +p" kho=off`, true, `"foo=a b"`, `console=ttyS0 dyndbg="file luo.c +p" "foo=a b" liveupdate=on kho=on`},
		{`a="kho=off b"`, true, "", `a="kho=off b" liveupdate=on kho=on`},
		// What follows "--" is init's: kept as it is, after the ensured ones.
		{"quiet -- single kho=off", true, "", "quiet liveupdate=on kho=on -- single kho=off"},
		{"quiet", true, "-- single", "quiet liveupdate=on kho=on -- single"},
		{"quiet --", false, "", "liveupdate=on kho=on"},
		{"", false, "quiet --  ", "quiet liveupdate=on kho=on --"},
		{"initrd=/i BOOT_IMAGE=/b", true, "", "liveupdate=on kho=on"},
	} {
		if got := Cmdline(tc.current, tc.reuse, tc.extra); got != tc.want {
			t.Errorf("Cmdline(%q, %v, %q) = %q, want %q", tc.current, tc.reuse, tc.extra, got, tc.want)
		}
	}
}
