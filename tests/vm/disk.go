package vm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Disk is a raw disk image the VM sees as a virtio disk (/dev/vda, vdb...
// in the order given).
type Disk struct {
	Path     string
	ReadOnly bool
}

// args is the disk's -drive option.
func (d Disk) args() []string {
	opt := "file=" + strings.ReplaceAll(d.Path, ",", ",,") + ",format=raw,if=virtio"
	if d.ReadOnly {
		opt += ",readonly=on"
	}
	return []string{"-drive", opt}
}

// RootDirs are the directories a root filesystem has for the mounts
// luoinit moves into it when it switches root.
var RootDirs = []string{"dev", "proc", "sys", "run", "tmp", "etc/luoinit"}

// RootTree writes a root filesystem's tree to dir: RootDirs, config at
// etc/luoinit/config.toml (none if empty), and the files (a copy of Host,
// or a symlink to Link, at Guest).
func RootTree(dir, config string, files ...File) error {
	for _, d := range RootDirs {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if config != "" {
		if err := os.WriteFile(filepath.Join(dir, "etc/luoinit/config.toml"), []byte(config), 0o644); err != nil {
			return err
		}
	}
	for _, f := range files {
		dst := filepath.Join(dir, f.Guest)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if f.Link != "" {
			if err := os.Symlink(f.Link, dst); err != nil {
				return err
			}
			continue
		}
		if err := copyFile(f.Host, dst); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Ext4 makes an ext4 image of tree at out, sizeMiB large, with the
// filesystem label and UUID given: mke2fs -d, which needs no privileges.
func Ext4(out, tree string, sizeMiB int, label, uuid string) error {
	return run("mke2fs", "-q", "-F", "-t", "ext4", "-d", tree, "-L", label, "-U", uuid, out, fmt.Sprintf("%dM", sizeMiB))
}

// Erofs makes an uncompressed erofs image of tree at out, with the
// filesystem UUID and label given. Debian 12's mkfs.erofs (1.5) has no
// option for a label: it is written into the superblock's volume_name
// (struct erofs_super_block in the kernel's fs/erofs/erofs_fs.h: the
// superblock at 1024, volume_name at 64 in it, after the 16-byte uuid at
// 48), with the superblock checksum left out (-Enosbcrc) so that the
// kernel has nothing to verify.
func Erofs(out, tree, label, uuid string) error {
	if len(label) > 16 {
		return fmt.Errorf("erofs label %q: more than 16 bytes", label)
	}
	if err := run("mkfs.erofs", "--quiet", "--all-root", "-Enosbcrc", "-U", uuid, out, tree); err != nil {
		return err
	}
	f, err := os.OpenFile(out, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	const sb = 1024
	var head [12]byte
	if _, err := f.ReadAt(head[:], sb); err != nil {
		return err
	}
	if binary.LittleEndian.Uint32(head[0:]) != 0xe0f5e1e2 {
		return fmt.Errorf("%s: no erofs superblock at %d", out, sb)
	}
	if compat := binary.LittleEndian.Uint32(head[8:]); compat&1 != 0 {
		return fmt.Errorf("%s: the superblock is checksummed (feature_compat %#x) despite -Enosbcrc", out, compat)
	}
	name := make([]byte, 16)
	copy(name, label)
	if _, err := f.WriteAt(name, sb+64); err != nil {
		return err
	}
	return f.Close()
}

// Partition is one partition of a GPT disk image: a filesystem image, the
// partition's unique GUID (PARTUUID) and its name (PARTLABEL).
type Partition struct{ Image, UUID, Name string }

// GPT writes a disk image at out with a GPT partition table (sfdisk) and
// the partitions in order, each 1 MiB aligned.
func GPT(out string, parts ...Partition) error {
	const sector, align = 512, 2048
	var script bytes.Buffer
	script.WriteString("label: gpt\nunit: sectors\n")
	start := int64(align)
	starts := make([]int64, len(parts))
	for i, p := range parts {
		st, err := os.Stat(p.Image)
		if err != nil {
			return err
		}
		size := (st.Size() + sector*align - 1) / (sector * align) * align
		starts[i] = start
		fmt.Fprintf(&script, "start=%d, size=%d, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=%s, name=%q\n", start, size, p.UUID, p.Name)
		start += size
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate((start + align) * sector); err != nil {
		return err
	}
	cmd := exec.Command("sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", out)
	cmd.Stdin = &script
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("sfdisk %s: %v: %s\n%s", out, err, b, script.String())
	}
	for i, p := range parts {
		in, err := os.Open(p.Image)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.NewOffsetWriter(f, starts[i]*sector), in)
		in.Close()
		if err != nil {
			return err
		}
	}
	return f.Close()
}

func run(name string, args ...string) error {
	if b, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, b)
	}
	return nil
}
