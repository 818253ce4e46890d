// Package carry is what luoinit carries across the kexec for itself, in
// its own LUO session: the manifest, at ManifestToken, in a sealed memfd;
// the freeze record, at RecordToken.
//
//	f, err := carry.Sealed("luoinit-manifest", data) // prepare, then PRESERVE_FD at ManifestToken
//	data, err = carry.ReadSealed(f, manifest.MaxFileSize) // PID 1, after RETRIEVE_FD
//
// The seals make the manifest read-only from the moment prepare wrote it:
// nothing that holds the fd, before or after the kexec, can change what
// PID 1 reads. The kernel carries a memfd's seals across the kexec.
package carry

import (
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/luoinit/luoinit/kcmdline"
)

// Session is the name of luoinit's own LUO session.
const Session = "luoinit"

// UpdateParam is the kernel parameter prepare puts on the next kernel's
// command line, luoinit.update=GENERATION: it tells PID 1 that this boot
// is a live update, whether or not its state came back.
const UpdateParam = "luoinit.update"

// Marker reads UpdateParam from a kernel command line: whether it is
// there, and its generation; a value that is not a generation (1 or more)
// is an error, the marker still being there.
func Marker(cmdline string) (generation uint64, present bool, err error) {
	v, ok := kcmdline.Last(cmdline, UpdateParam)
	if !ok {
		return 0, false, nil
	}
	gen, err := strconv.ParseUint(v, 10, 64)
	if err != nil || gen == 0 {
		return 0, true, fmt.Errorf("%s=%q on the kernel command line is not a generation (1 or more)", UpdateParam, v)
	}
	return gen, true, nil
}

// Tokens in Session.
const (
	ManifestToken = 0 // the manifest: TOML in a sealed memfd
	RecordToken   = 1 // the freeze record (manifest.RecordSize bytes)
)

// Seals are the seals a carried manifest must have: no write, no size
// change, no seal removed or added.
const Seals = unix.F_SEAL_WRITE | unix.F_SEAL_GROW | unix.F_SEAL_SHRINK | unix.F_SEAL_SEAL

// Sealed returns a memfd named name that holds data and carries Seals.
func Sealed(name string, data []byte) (*os.File, error) {
	f, err := Memfd(name, data)
	if err != nil {
		return nil, err
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, Seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("fcntl(%d, F_ADD_SEALS, %#x) on memfd %q: %w", f.Fd(), Seals, name, err)
	}
	return f, nil
}

// Memfd returns a memfd named name that holds data and may be sealed
// (MFD_ALLOW_SEALING), but is not.
func Memfd(name string, data []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create(%q, MFD_CLOEXEC|MFD_ALLOW_SEALING): %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing %d bytes to memfd %q: %w", len(data), name, err)
	}
	return f, nil
}

// ReadSealed reads a carried memfd whole after checking that it has every
// one of Seals and holds at most max bytes.
func ReadSealed(f *os.File, max int64) ([]byte, error) {
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		return nil, fmt.Errorf("fcntl(%d, F_GET_SEALS): %w", f.Fd(), err)
	}
	if missing := Seals &^ seals; missing != 0 {
		return nil, fmt.Errorf("not sealed: seals %#x, missing %s", seals, sealNames(missing))
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("fstat(%d): %w", f.Fd(), err)
	}
	if st.Size > max {
		return nil, fmt.Errorf("%d bytes, more than the %d allowed", st.Size, max)
	}
	data := make([]byte, st.Size)
	if _, err := f.ReadAt(data, 0); err != nil && err != io.EOF {
		return nil, fmt.Errorf("reading %d bytes: %w", st.Size, err)
	}
	return data, nil
}

// sealNames names the seals set in s.
func sealNames(s int) string {
	var out string
	for _, n := range []struct {
		bit  int
		name string
	}{{unix.F_SEAL_WRITE, "F_SEAL_WRITE"}, {unix.F_SEAL_GROW, "F_SEAL_GROW"}, {unix.F_SEAL_SHRINK, "F_SEAL_SHRINK"}, {unix.F_SEAL_SEAL, "F_SEAL_SEAL"}} {
		if s&n.bit != 0 {
			if out != "" {
				out += "|"
			}
			out += n.name
		}
	}
	return out
}
