package pid1

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseMountinfo(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []mountinfoEntry
		err  string
	}{
		{
			name: "proc(5) example, optional field",
			text: "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n",
			want: []mountinfoEntry{{ID: 36, Parent: 35, Root: "/mnt1", MountPoint: "/mnt2", FSType: "ext3", Source: "/dev/root"}},
		},
		{
			name: "no optional field, several lines, blank line",
			text: "22 27 0:21 / /proc rw,relatime - proc proc rw\n\n24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=1k,mode=755\n",
			want: []mountinfoEntry{
				{ID: 22, Parent: 27, Root: "/", MountPoint: "/proc", FSType: "proc", Source: "proc"},
				{ID: 24, Parent: 27, Root: "/", MountPoint: "/dev", FSType: "devtmpfs", Source: "devtmpfs"},
			},
		},
		{
			name: "many optional fields",
			text: "40 1 0:30 / /run rw shared:5 master:2 propagate_from:3 unbindable - tmpfs tmpfs rw",
			want: []mountinfoEntry{{ID: 40, Parent: 1, Root: "/", MountPoint: "/run", FSType: "tmpfs", Source: "tmpfs"}},
		},
		{
			name: "escaped space, tab, newline and backslash",
			text: `50 1 0:40 / /mnt/a\040b\011c\012d\134e rw - tmpfs my\040src rw`,
			want: []mountinfoEntry{{ID: 50, Parent: 1, Root: "/", MountPoint: "/mnt/a b\tc\nd\\e", FSType: "tmpfs", Source: "my src"}},
		},
		{
			name: "a backslash not followed by an octal escape stays",
			text: `51 1 0:41 / /mnt/x\9y\04 rw - tmpfs none rw`,
			want: []mountinfoEntry{{ID: 51, Parent: 1, Root: "/", MountPoint: `/mnt/x\9y\04`, FSType: "tmpfs", Source: "none"}},
		},
		{
			name: "empty source",
			text: "52 1 0:42 / /mnt/e rw - tmpfs  rw",
			want: []mountinfoEntry{{ID: 52, Parent: 1, Root: "/", MountPoint: "/mnt/e", FSType: "tmpfs", Source: ""}},
		},
		{name: "no separator", text: "22 27 0:21 / /proc rw,relatime proc proc rw", err: `line 1: 9 fields and no " - " separator`},
		{name: "separator too early", text: "22 27 0:21 / - /proc rw proc proc rw", err: `line 1: 10 fields and no " - " separator`},
		{name: "too few fields after separator", text: "22 27 0:21 / /proc rw - proc proc", err: `line 1: 2 fields after " - ", want 3`},
		{name: "bad mount ID", text: "x 27 0:21 / /proc rw - proc proc rw", err: `line 1: mount ID "x"`},
		{name: "bad parent ID", text: "22 y 0:21 / /proc rw - proc proc rw", err: `line 1: parent ID "y"`},
		{name: "relative mount point", text: "22 27 0:21 / proc rw - proc proc rw", err: `line 1: mount point "proc" is not absolute`},
		{name: "error names its line", text: "22 27 0:21 / /proc rw - proc proc rw\n23 1\n", err: "mountinfo line 2:"},
		{name: "empty", text: "", want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMountinfo(strings.NewReader(tc.text))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestMountTable(t *testing.T) {
	entries := []mountinfoEntry{
		{MountPoint: "/", FSType: "rootfs"},
		{MountPoint: "/dev/pts", FSType: "devpts"},
		{MountPoint: "/dev", FSType: "tmpfs"},
		{MountPoint: "/dev", FSType: "devtmpfs"}, // mounted over the tmpfs
	}
	tests := []struct {
		target string
		fstype string
		ok     bool
	}{
		{"/dev", "devtmpfs", true},
		{"/dev/pts", "devpts", true},
		{"/proc", "", false},
		{"/dev/shm", "", false},
	}
	table := mountTable(entries)
	for _, tc := range tests {
		fstype, ok := table[tc.target]
		if fstype != tc.fstype || ok != tc.ok {
			t.Errorf("%s: %q %v, want %q %v", tc.target, fstype, ok, tc.fstype, tc.ok)
		}
	}
}

func FuzzParseMountinfo(f *testing.F) {
	for _, s := range []string{
		"36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n",
		"22 27 0:21 / /proc rw,relatime - proc proc rw\n24 27 0:6 / /dev rw - devtmpfs devtmpfs rw\n",
		`50 1 0:40 / /mnt/a\040b rw - tmpfs  rw`,
		"1 2 3 4 5 6 - 7 8 9",
		`\\\`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		entries, err := parseMountinfo(strings.NewReader(s))
		if err != nil {
			return
		}
		if len(entries) > strings.Count(s, "\n")+1 {
			t.Fatalf("%d entries from %d lines", len(entries), strings.Count(s, "\n")+1)
		}
		for _, e := range entries {
			if !strings.HasPrefix(e.MountPoint, "/") {
				t.Fatalf("mount point %q", e.MountPoint)
			}
		}
	})
}
