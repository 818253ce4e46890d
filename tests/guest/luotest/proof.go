package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/luoinit/luoinit/luo"
	"github.com/luoinit/luoinit/tests/vm"
	"github.com/luoinit/luoinit/tests/vm/guest"
	"golang.org/x/sys/unix"
)

// The proof scenario: two memfds in two sessions cross a real kexec.
const (
	bigSession    = "proof-big"
	bigToken      = 0x1001
	bigSize       = 64 << 20
	bigSeed       = 0xC0FFEE
	bigPos        = 12345
	sealedSession = "proof-sealed"
	sealedToken   = 7
	sealedData    = "sealed payload: write, grow and shrink are refused"
	seals         = unix.F_SEAL_WRITE | unix.F_SEAL_GROW | unix.F_SEAL_SHRINK
	neverSession  = "proof-never-existed"
)

// held keeps the session fds open until reboot(KEXEC): a session whose fd
// is closed before it is not preserved.
var held []*luo.Session

func proofBefore() error {
	dev, err := luo.Open(luo.DefaultPath)
	if err != nil {
		return err
	}
	defer dev.Close()

	big, err := memfd("big", 0)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := fillPattern(big, bigSize, bigSeed); err != nil {
		return err
	}
	if _, err := big.Seek(bigPos, io.SeekStart); err != nil {
		return err
	}
	guest.Info("filled %d MiB memfd with the pattern in %v", bigSize>>20, time.Since(t0).Round(time.Millisecond))

	sealed, err := memfd("sealed", unix.MFD_ALLOW_SEALING)
	if err != nil {
		return err
	}
	if _, err := sealed.WriteString(sealedData); err != nil {
		return err
	}
	if _, err := unix.FcntlInt(sealed.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		return fmt.Errorf("F_ADD_SEALS: %w", err)
	}

	for _, p := range []struct {
		session string
		token   uint64
		f       *os.File
	}{
		{bigSession, bigToken, big},
		{sealedSession, sealedToken, sealed},
	} {
		s, err := dev.CreateSession(p.session)
		if err != nil {
			return err
		}
		t0 := time.Now()
		if err := s.PreserveFD(int(p.f.Fd()), p.token); err != nil {
			return err
		}
		guest.Info("preserved %s in session %q under token %#x in %v", p.f.Name(), p.session, p.token, time.Since(t0).Round(time.Microsecond))
		if name, err := s.GetName(); err == nil {
			if name != p.session {
				return fmt.Errorf("GET_NAME says %q, created as %q", name, p.session)
			}
		} else if !errors.Is(err, luo.ErrGetNameUnsupported) {
			return err
		}
		held = append(held, s)
	}
	guest.Mark("KEXEC", "reboot(LINUX_REBOOT_CMD_KEXEC) at %v boot time", guest.BootTime())
	return guest.Kexec(vm.GuestKernel, vm.GuestInitramfs2, guest.NextCmdline("2"))
}

func proofAfter() error {
	start := guest.BootTime()
	dev, err := luo.Open(luo.DefaultPath)
	if err != nil {
		return err
	}
	defer dev.Close()

	if _, err := dev.RetrieveSession(neverSession); !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("RETRIEVE_SESSION %q: got %v, want ENOENT", neverSession, err)
	} else {
		guest.Info("as expected: %v", err)
	}

	bs, err := dev.RetrieveSession(bigSession)
	if err != nil {
		return err
	}
	ss, err := dev.RetrieveSession(sealedSession)
	if err != nil {
		return err
	}
	guest.Info("retrieved sessions %q and %q, %v after boot", bigSession, sealedSession, guest.BootTime())

	// Tokens in the other order than they were preserved: any order works.
	sealed, err := ss.RetrieveFD(sealedToken)
	if err != nil {
		return err
	}
	big, err := bs.RetrieveFD(bigToken)
	if err != nil {
		return err
	}
	for _, f := range []*os.File{big, sealed} {
		flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC == 0 {
			return fmt.Errorf("retrieved %s: FD_CLOEXEC not set (flags %#x, %v)", f.Name(), flags, err)
		}
	}

	t0 := time.Now()
	if err := checkPattern(big, bigSize, bigSeed); err != nil {
		return fmt.Errorf("session %q token %#x: %w", bigSession, bigToken, err)
	}
	guest.Info("verified all %d bytes of the %d MiB memfd in %v", bigSize, bigSize>>20, time.Since(t0).Round(time.Millisecond))
	if pos, err := big.Seek(0, io.SeekCurrent); err != nil || pos != bigPos {
		return fmt.Errorf("file position %d (%v), want %d", pos, err, bigPos)
	}

	got, err := unix.FcntlInt(sealed.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		return fmt.Errorf("F_GET_SEALS: %w", err)
	}
	if got&seals != seals {
		return fmt.Errorf("seals %#x after the live update, want %#x set", got, seals)
	}
	data, err := io.ReadAll(io.NewSectionReader(sealed, 0, 1<<20))
	if err != nil {
		return err
	}
	if string(data) != sealedData {
		return fmt.Errorf("sealed memfd holds %q, want %q", data, sealedData)
	}
	if _, err := unix.Pwrite(int(sealed.Fd()), []byte("X"), 0); !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("write to the sealed memfd: %v, want EPERM", err)
	}
	guest.Info("sealed memfd: %d bytes intact, seals %#x, write refused", len(data), got)

	for _, s := range []*luo.Session{bs, ss} {
		if name, err := s.GetName(); err == nil && name != s.Name() {
			return fmt.Errorf("GET_NAME says %q, retrieved as %q", name, s.Name())
		}
		if err := s.Finish(); err != nil {
			return err
		}
		guest.Info("finished session %q", s.Name())
	}
	guest.Pass("2 sessions, 2 memfds (%d MiB patterned, sealed) survived the kexec; restore took %v",
		bigSize>>20, (guest.BootTime() - start).Round(time.Millisecond))
	return nil
}
