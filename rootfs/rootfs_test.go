package rootfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/u-root/uio/ulog/ulogtest"

	"github.com/u-root/u-root/pkg/mount/block"
	"golang.org/x/sys/unix"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		cmdline string
		ok      bool
		want    Spec
		err     string
	}{
		{cmdline: "console=ttyS0 liveupdate=on"},
		{cmdline: "root=/dev/vda1", ok: true, want: Spec{Root: "/dev/vda1", By: ByPath, Value: "/dev/vda1", ReadOnly: true, Wait: NoWait}},
		{cmdline: "root=UUID=ABCD-1234 rw rootwait", ok: true, want: Spec{Root: "UUID=ABCD-1234", By: ByUUID, Value: "ABCD-1234", Wait: DefaultWait}},
		{cmdline: "rw root=PARTUUID=1b2c/PARTNROFF=-1 ro rootwait=7 rootdelay=2 rootfstype=ext4,,erofs rootflags=noatime", ok: true,
			want: Spec{Root: "PARTUUID=1b2c/PARTNROFF=-1", By: ByPartUUID, Value: "1b2c", PartNrOff: -1, FSTypes: []string{"ext4", "erofs"}, Flags: "noatime", ReadOnly: true, Delay: 2 * time.Second, Wait: 7 * time.Second}},
		{cmdline: "root=LABEL=root-b root=PARTLABEL=b", ok: true, want: Spec{Root: "PARTLABEL=b", By: ByPartLabel, Value: "b", ReadOnly: true, Wait: NoWait}},
		{cmdline: `root="LABEL=my root"`, ok: true, want: Spec{Root: "LABEL=my root", By: ByLabel, Value: "my root", ReadOnly: true, Wait: NoWait}},
		{cmdline: "root=254:1", ok: true, want: Spec{Root: "254:1", By: ByDevNum, Value: "254:1", ReadOnly: true, Wait: NoWait}},
		{cmdline: "root=/dev/nfs -- rw", ok: true, want: Spec{Root: "/dev/nfs", By: ByPath, Value: "/dev/nfs", ReadOnly: true, Wait: NoWait}},
		{cmdline: "root=vda1", ok: true, err: "luoinit finds a root by"},
		{cmdline: "root=UUID=", ok: true, err: "nothing after UUID="},
		{cmdline: "root=PARTUUID=x/PARTNROFF=two", ok: true, err: `PARTNROFF="two"`},
		{cmdline: "root=/dev/vda rootwait=forever", ok: true, err: `rootwait="forever"`},
		{cmdline: "rootdelay=-1 root=/dev/vda", err: `rootdelay="-1"`},
	} {
		t.Run(tc.cmdline, func(t *testing.T) {
			got, ok, err := Parse(tc.cmdline)
			if ok != tc.ok {
				t.Errorf("ok = %v, want %v", ok, tc.ok)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to say %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.ok && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse = %+v\nwant    %+v", got, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"root=UUID=a rw", "root=PARTUUID=x/PARTNROFF=3 rootwait=1", `root="LABEL=a b"`, "root=1:2 rootflags=x,y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cmdline string) {
		spec, ok, err := Parse(cmdline)
		if !ok || err != nil {
			return
		}
		if spec.By == "" || spec.Value == "" {
			t.Errorf("%q: parsed without a way to find it: %+v", cmdline, spec)
		}
		_ = spec.String()
	})
}

// image returns a device's first bytes holding sb's magic, uuid and label.
func image(sb superblock, uuid [16]byte, label string) []byte {
	b := make([]byte, probeSize)
	copy(b[sb.magicOff:], sb.magic)
	copy(b[sb.uuidOff:], uuid[:])
	copy(b[sb.labelOff:sb.labelOff+int64(sb.labelLen)], label)
	return b
}

func TestProbe(t *testing.T) {
	uuid := [16]byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	const want = "deadbeef-0102-0304-0506-0708090a0b0c"
	for _, sb := range superblocks {
		t.Run(sb.fstype, func(t *testing.T) {
			label := "root-b"
			id := probeBytes(image(sb, uuid, label))
			if id != (Identity{FSType: sb.fstype, UUID: want, Label: label}) {
				t.Errorf("got %+v", id)
			}
			// A label that fills its field has no NUL.
			full := strings.Repeat("x", sb.labelLen)
			if id := probeBytes(image(sb, uuid, full)); id.Label != full {
				t.Errorf("full label: got %q", id.Label)
			}
		})
	}
	if id := probeBytes(make([]byte, probeSize)); id != (Identity{}) {
		t.Errorf("zeroes: %+v", id)
	}
	// Short reads: a device smaller than the probe.
	if id := probeBytes(image(superblocks[0], uuid, "a")[:1130]); id != (Identity{FSType: "ext4"}) {
		t.Errorf("short ext4: %+v", id)
	}
}

func FuzzProbe(f *testing.F) {
	f.Add(image(superblocks[0], [16]byte{1}, "root")[:2048])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		id := probeBytes(b)
		if id.FSType == "" && (id.UUID != "" || id.Label != "") {
			t.Errorf("identity without a filesystem: %+v", id)
		}
	})
}

// fakeSys is a /sys/class/block with vda, vda1 and vda2, and /dev with
// regular files standing in for the nodes (node() refuses them, which
// the tests use).
func fakeSys(t *testing.T) system {
	t.Helper()
	dir := t.TempDir()
	s := system{
		sysBlock: filepath.Join(dir, "sys/class/block"),
		sysDev:   filepath.Join(dir, "sys/dev/block"),
		dev:      filepath.Join(dir, "dev"),
		devices: func() (block.BlockDevices, error) {
			return block.BlockDevices{{Name: "vda"}, {Name: "vda1", FsUUID: "u1"}, {Name: "vda2"}}, nil
		},
	}
	for _, d := range []string{"devices/virtio0/block/vda/vda1", "devices/virtio0/block/vda/vda2", "sys/class/block", "sys/dev/block/254:1", "dev"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range map[string]string{"vda": "devices/virtio0/block/vda", "vda1": "devices/virtio0/block/vda/vda1", "vda2": "devices/virtio0/block/vda/vda2"} {
		if err := os.Symlink(filepath.Join(dir, target), filepath.Join(s.sysBlock, name)); err != nil {
			t.Fatal(err)
		}
	}
	for path, data := range map[string]string{
		"devices/virtio0/block/vda/vda1/partition": "1\n",
		"devices/virtio0/block/vda/vda2/partition": "2\n",
		"sys/dev/block/254:1/uevent":               "MAJOR=254\nMINOR=1\nDEVNAME=vda1\nDEVTYPE=partition\n",
		"dev/vda2":                                 "",
	} {
		if err := os.WriteFile(filepath.Join(dir, path), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestPartitionOffset(t *testing.T) {
	s := fakeSys(t)
	for _, tc := range []struct {
		name string
		off  int
		want string
		err  string
	}{
		{"vda1", 1, "vda2", ""},
		{"vda2", -1, "vda1", ""},
		{"vda1", 2, "", "vda has no partition 3"},
		{"vda", 1, "", "vda is not a partition"},
	} {
		got, err := s.partitionOffset(tc.name, tc.off)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s%+d: err %v, want %q", tc.name, tc.off, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s%+d = %q, %v; want %q", tc.name, tc.off, got, err, tc.want)
		}
	}
}

func TestFind(t *testing.T) {
	s := fakeSys(t)
	for _, tc := range []struct {
		spec Spec
		err  string // "" and no device: not there yet
	}{
		{spec: Spec{By: ByPath, Value: filepath.Join(s.dev, "vda9")}},
		{spec: Spec{By: ByDevNum, Value: "254:7"}},
		{spec: Spec{By: ByDevNum, Value: "254:1"}}, // DEVNAME=vda1, no node yet
		{spec: Spec{By: ByUUID, Value: "nothing"}},
		{spec: Spec{By: ByUUID, Value: "U1"}}, // vda1, no node yet
		{spec: Spec{By: ByLabel, Value: "nothing"}},
		{spec: Spec{By: ByUUID, Value: "U1", PartNrOff: 5}, err: "vda has no partition 6"},
		// /dev holds a regular file where the node should be.
		{spec: Spec{By: ByPath, Value: filepath.Join(s.dev, "vda2")}, err: "is not a block device"},
		{spec: Spec{By: ByUUID, Value: "U1", PartNrOff: 1}, err: "is not a block device"},
	} {
		tc.spec.Root = tc.spec.By + "=" + tc.spec.Value
		dev, err := s.find(tc.spec)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.spec.Root, err, tc.err)
			}
			continue
		}
		if err != nil || dev != "" {
			t.Errorf("%s = %q, %v; want not there yet", tc.spec.Root, dev, err)
		}
	}
}

func TestFindAmbiguous(t *testing.T) {
	s := fakeSys(t)
	s.devices = func() (block.BlockDevices, error) {
		return block.BlockDevices{{Name: "vda1", FsUUID: "same"}, {Name: "vdb1", FsUUID: "same"}}, nil
	}
	_, err := s.find(Spec{Root: "UUID=same", By: ByUUID, Value: "same"})
	if !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), "vda1, vdb1") {
		t.Errorf("err = %v, want both devices named", err)
	}
}

func TestWaitNotFound(t *testing.T) {
	s := fakeSys(t)
	var lines []string
	spec := Spec{Root: "UUID=0000", By: ByUUID, Value: "0000", Wait: 120 * time.Millisecond}
	_, err := s.wait(context.Background(), spec, printf(func(f string, a ...any) { lines = append(lines, f) }))
	var nf *NotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("err = %v, want a NotFoundError", err)
	}
	for _, want := range []string{"root=UUID=0000", "rootwait=0", "vda, vda1, vda2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	if nf.Waited < spec.Wait {
		t.Errorf("gave up after %v, before its bound %v", nf.Waited, spec.Wait)
	}
}

func TestWaitCancelled(t *testing.T) {
	s := fakeSys(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.wait(ctx, Spec{Root: "LABEL=x", By: ByLabel, Value: "x", Wait: time.Hour}, ulogtest.Logger{TB: t})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestRemoveAll(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"init", "bin/luoinit", "etc/luoinit/config.toml", "dev/.keep"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/init", filepath.Join(dir, "bin/sh")); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// init, bin, bin/luoinit, bin/sh, etc, etc/luoinit, config.toml, dev, dev/.keep
	if n := removeAll(fd, ulogtest.Logger{TB: t}); n != 9 {
		t.Errorf("removed %d entries, want 9", n)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left %v", left)
	}
}

func TestRequire(t *testing.T) {
	dir := t.TempDir()
	if err := require(dir, []string{"/etc/luoinit/config.toml"}); err == nil || !strings.Contains(err.Error(), "no /etc/luoinit/config.toml") {
		t.Errorf("err = %v", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "etc/luoinit"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/luoinit/config.toml"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := require(dir, []string{"/etc/luoinit/config.toml"}); err != nil {
		t.Error(err)
	}
}

// TestProbeMkfs checks Probe against filesystems made by their own tools,
// which know the superblocks independently of this package.
func TestProbeMkfs(t *testing.T) {
	const uuid = "0f0e0d0c-0b0a-4908-8706-050403020100"
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	ext4, erofs := filepath.Join(dir, "ext4"), filepath.Join(dir, "erofs")
	for _, tc := range []struct {
		tool, image string
		args        []string
		want        Identity
	}{
		{"mke2fs", ext4, []string{"-q", "-F", "-t", "ext4", "-L", "root-a", "-U", uuid, ext4, "4M"}, Identity{"ext4", uuid, "root-a"}},
		// Debian 12's mkfs.erofs (1.5) sets no label.
		{"mkfs.erofs", erofs, []string{"--quiet", "-U", uuid, erofs, tree}, Identity{"erofs", uuid, ""}},
	} {
		t.Run(tc.tool, func(t *testing.T) {
			if _, err := exec.LookPath(tc.tool); err != nil {
				t.Skipf("%s: %v (tests/deps.sh installs it)", tc.tool, err)
			}
			if b, err := exec.Command(tc.tool, tc.args...).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v: %s", tc.tool, err, b)
			}
			f, err := os.Open(tc.image)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			id, err := Probe(f)
			if err != nil || id != tc.want {
				t.Errorf("Probe = %+v, %v; want %+v", id, err, tc.want)
			}
		})
	}
}

// TestMountRootErrors: a filesystem that does not mount names each type
// tried with its errno. A regular file of zeroes holds no filesystem, so
// nothing is mounted; it needs root to get past EPERM.
func TestMountRootErrors(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mount(2) needs root: without it every type fails with EPERM")
	}
	dir := t.TempDir()
	dev := filepath.Join(dir, "disk")
	if err := os.WriteFile(dev, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "sysroot")
	_, err := mountRoot(dev, target, Spec{FSTypes: []string{"ext4", "nosuchfs"}, ReadOnly: true, Flags: "noatime"})
	if err == nil {
		t.Fatal("a regular file mounted as a root")
	}
	for _, want := range []string{
		// ENOTBLK or EINVAL, as the kernel sees a regular file.
		fmt.Sprintf(`mount(%q, %q, "ext4", MS_RDONLY, "noatime") = E`, dev, target),
		fmt.Sprintf(`mount(%q, %q, "nosuchfs", MS_RDONLY, "noatime") = ENODEV`, dev, target),
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v\ndoes not say %s", err, want)
		}
	}
	if !errors.Is(err, unix.ENODEV) {
		t.Errorf("%v does not wrap ENODEV", err)
	}
}

// printf makes a logger of a function, for the tests.
type printf func(format string, args ...any)

func (f printf) Printf(format string, args ...any) { f(format, args...) }
