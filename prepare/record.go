package prepare

import (
	"fmt"
	"os"

	"github.com/luoinit/luoinit/luo"
	"github.com/luoinit/luoinit/manifest"
	"golang.org/x/sys/unix"
)

// The freeze record: the last two timestamps of a live update (first
// workload stopped, reboot call) are taken after the next initramfs is
// loaded, so they cannot be in its manifest. They travel in a small memfd
// preserved in luoinit's own session, written in place during the freeze:
// after PRESERVE_FD the kernel pins the memfd's pages and freezes its size,
// and what is written into those pages before the kexec comes through.
func (s *state) createRecord(dev *luo.Device) error {
	fd, err := unix.MemfdCreate("luoinit-record", unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("memfd_create(\"luoinit-record\"): %w", err)
	}
	f := os.NewFile(uintptr(fd), "luoinit-record")
	s.files = append(s.files, f)
	// Real pages, not holes: the record is written into them later.
	if _, err := f.WriteAt(make([]byte, manifest.RecordSize), 0); err != nil {
		return fmt.Errorf("freeze record: %w", err)
	}
	sess, err := dev.CreateSession(manifest.RecordSession)
	if err != nil {
		return err
	}
	s.sessions = append(s.sessions, sess)
	if err := sess.PreserveFD(fd, manifest.RecordToken); err != nil {
		return err
	}
	s.record = f
	return nil
}

func (s *state) writeRecord(first, reboot manifest.Stamp) error {
	b, err := manifest.MarshalRecord(manifest.Record{FirstStopped: first, Reboot: reboot})
	if err != nil {
		return err
	}
	if _, err := s.record.WriteAt(b, 0); err != nil {
		return fmt.Errorf("writing the freeze record: %w", err)
	}
	return nil
}
