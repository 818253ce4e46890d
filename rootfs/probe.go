package rootfs

import (
	"bytes"
	"fmt"
	"io"
)

// Identity is what a filesystem's superblock says of itself.
type Identity struct {
	FSType string // "" when no superblock luoinit knows was found
	UUID   string // lower case, 8-4-4-4-12
	Label  string
}

// superblock says where one filesystem keeps its magic, UUID and label.
type superblock struct {
	fstype            string
	magicOff          int64
	magic             []byte
	uuidOff, labelOff int64
	labelLen          int
}

// superblocks are the filesystems whose label luoinit reads (u-root's
// block package reads UUIDs, not labels): ext2/3/4 (struct ext4_super_block
// at 1024), xfs (struct xfs_sb at 0), erofs (struct erofs_super_block at
// 1024) and btrfs (struct btrfs_super_block at 64 KiB).
var superblocks = []superblock{
	{"ext4", 1024 + 0x38, []byte{0x53, 0xef}, 1024 + 0x68, 1024 + 0x78, 16},
	{"xfs", 0, []byte("XFSB"), 32, 108, 12},
	{"erofs", 1024, []byte{0xe2, 0xe1, 0xf5, 0xe0}, 1024 + 48, 1024 + 64, 16},
	{"btrfs", 0x10040, []byte("_BHRfS_M"), 0x10020, 0x1012b, 256},
}

// probeSize is how much of a device Probe reads: up to btrfs's label.
const probeSize = 0x1012b + 256

// Probe reads the identity of the filesystem on r (a block device).
func Probe(r io.ReaderAt) (Identity, error) {
	buf := make([]byte, probeSize)
	n, err := r.ReadAt(buf, 0)
	if n < 2048 && err != nil {
		return Identity{}, err
	}
	return probeBytes(buf[:n]), nil
}

// probeBytes is Probe on the first bytes of a device.
func probeBytes(b []byte) Identity {
	field := func(off int64, n int) []byte {
		if off < 0 || off+int64(n) > int64(len(b)) {
			return nil
		}
		return b[off : off+int64(n)]
	}
	for _, sb := range superblocks {
		if m := field(sb.magicOff, len(sb.magic)); m == nil || !bytes.Equal(m, sb.magic) {
			continue
		}
		id := Identity{FSType: sb.fstype}
		if u := field(sb.uuidOff, 16); u != nil {
			id.UUID = formatUUID(u)
		}
		if l := field(sb.labelOff, sb.labelLen); l != nil {
			if i := bytes.IndexByte(l, 0); i >= 0 {
				l = l[:i]
			}
			id.Label = string(l)
		}
		return id
	}
	return Identity{}
}

// formatUUID writes 16 bytes as blkid does, in the order they are stored.
func formatUUID(u []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
