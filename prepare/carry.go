package prepare

import (
	"fmt"

	"github.com/luoinit/luoinit/carry"
	"github.com/luoinit/luoinit/luo"
	"github.com/luoinit/luoinit/manifest"
	"github.com/u-root/uio/ulog"
)

// createOwn creates luoinit's own session (package carry) with the
// freeze record in it. The last two timestamps of a live update (first
// workload stopped, reboot call) are taken after the manifest is sealed,
// so they travel in a small memfd of their own, written in place during
// the freeze: after PRESERVE_FD the kernel pins the memfd's pages and
// freezes its size, and what is written into those pages before the kexec
// comes through.
func (s *state) createOwn(dev *luo.Device) error {
	// Real pages, not holes: the record is written into them later.
	f, err := carry.Memfd("luoinit-record", make([]byte, manifest.RecordSize))
	if err != nil {
		return fmt.Errorf("freeze record: %w", err)
	}
	s.files = append(s.files, f)
	sess, err := dev.CreateSession(carry.Session)
	if err != nil {
		return err
	}
	s.sessions = append(s.sessions, sess)
	if err := sess.PreserveFD(int(f.Fd()), carry.RecordToken); err != nil {
		return err
	}
	s.own, s.record = sess, f
	return nil
}

// carryManifest seals the manifest into a memfd and preserves it in
// luoinit's own session: the next kernel's PID 1 reads it from there.
func (s *state) carryManifest() error {
	b, err := s.m.Marshal()
	if err != nil {
		return err
	}
	seal := carry.Sealed
	if testManifest != nil {
		var unsealed bool
		if b, unsealed, err = testManifest(b); err != nil {
			return fmt.Errorf("manifest: test hook: %w", err)
		}
		if unsealed {
			seal = carry.Memfd
		}
	}
	f, err := seal("luoinit-manifest", b)
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	s.files = append(s.files, f)
	if err := s.own.PreserveFD(int(f.Fd()), carry.ManifestToken); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	s.log.Printf("manifest (%d bytes, generation %d) sealed into session %q token %d", len(b), s.m.Generation, carry.Session, carry.ManifestToken)
	testStep("manifest", s.log)
	return nil
}

// testStep is set only in a build with the luoinittest tag (testhook.go):
// prepare calls it at each named step, so that a VM test can stop it
// exactly there and kill it ("collect", "preserve:WORKLOAD" after the
// first fd of that workload, "manifest", "kexec-load").
var testStep = func(step string, log ulog.Logger) {}

// testManifest is set only in a build with the luoinittest tag
// (testhook.go): the VM tests' way to carry a manifest that is broken or
// unsealed, which PID 1 must refuse.
var testManifest func(b []byte) (out []byte, unsealed bool, err error)

// TestUnsealed, as the first line of what a test build's manifest filter
// writes, carries the rest unsealed (testhook.go).
const TestUnsealed = "#luoinit-test: unsealed\n"

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
