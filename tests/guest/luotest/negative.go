package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/luoinit/luoinit/luo"
	"github.com/luoinit/luoinit/tests/vm"
	"github.com/luoinit/luoinit/tests/vm/guest"
	"golang.org/x/sys/unix"
)

// The negative scenario: what is not preserved does not come back, and
// what LUO refuses is refused with the kernel's error.
const (
	closedSession = "neg-closed"
	keptSession   = "neg-kept"
	keptToken     = 1
	pipeToken     = 2
	keptData      = "kept across the kexec"
)

func negativeBefore() error {
	dev, err := luo.Open(luo.DefaultPath)
	if err != nil {
		return err
	}
	defer dev.Close()

	// /dev/liveupdate admits one opener.
	if d2, err := luo.Open(luo.DefaultPath); err == nil {
		d2.Close()
		return fmt.Errorf("second open of %s succeeded, want EBUSY", luo.DefaultPath)
	} else if !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("second open: %v, want EBUSY", err)
	} else {
		guest.Info("as expected: %v", err)
	}

	closed, err := dev.CreateSession(closedSession)
	if err != nil {
		return err
	}
	m1, err := memfd("closed", 0)
	if err != nil {
		return err
	}
	if _, err := m1.WriteString("lost on purpose"); err != nil {
		return err
	}
	if err := closed.PreserveFD(int(m1.Fd()), 1); err != nil {
		return err
	}
	if err := closed.Close(); err != nil {
		return err
	}
	guest.Info("session %q preserved a memfd, then its fd was closed before the kexec", closedSession)

	kept, err := dev.CreateSession(keptSession)
	if err != nil {
		return err
	}
	m2, err := memfd("kept", 0)
	if err != nil {
		return err
	}
	if _, err := m2.WriteString(keptData); err != nil {
		return err
	}
	if err := kept.PreserveFD(int(m2.Fd()), keptToken); err != nil {
		return err
	}

	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	defer w.Close()
	err = kept.PreserveFD(int(r.Fd()), pipeToken)
	var le *luo.Error
	switch {
	case err == nil:
		return fmt.Errorf("PRESERVE_FD of a pipe succeeded, want the kernel to refuse it")
	case !errors.As(err, &le) || le.Op != "preserve fd" || le.Session != keptSession || le.Token != pipeToken:
		return fmt.Errorf("PRESERVE_FD of a pipe: %v: does not name op, session and token", err)
	}
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return fmt.Errorf("PRESERVE_FD of a pipe: %v: no errno wrapped", err)
	}
	guest.Mark("REFUSED", "%s", unix.ErrnoName(errno))
	guest.Info("as expected, the kernel refused the pipe: %v", err)

	held = append(held, kept)
	guest.Mark("KEXEC", "reboot(LINUX_REBOOT_CMD_KEXEC) at %v boot time", guest.BootTime())
	return guest.Kexec(vm.GuestKernel, vm.GuestInitramfs2, guest.NextCmdline("2"))
}

func negativeAfter() error {
	dev, err := luo.Open(luo.DefaultPath)
	if err != nil {
		return err
	}
	defer dev.Close()

	if s, err := dev.RetrieveSession(closedSession); err == nil {
		s.Close()
		return fmt.Errorf("session %q came back though its fd was closed before the kexec", closedSession)
	} else if !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("RETRIEVE_SESSION %q: %v, want ENOENT", closedSession, err)
	} else {
		guest.Info("as expected: %v", err)
	}

	kept, err := dev.RetrieveSession(keptSession)
	if err != nil {
		return err
	}
	if f, err := kept.RetrieveFD(pipeToken); err == nil {
		f.Close()
		return fmt.Errorf("token %d (the refused pipe) came back", pipeToken)
	} else if !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("RETRIEVE_FD of the refused pipe's token: %v, want ENOENT", err)
	} else {
		guest.Info("as expected: %v", err)
	}
	f, err := kept.RetrieveFD(keptToken)
	if err != nil {
		return err
	}
	data, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<20))
	if err != nil {
		return err
	}
	if string(data) != keptData {
		return fmt.Errorf("session %q token %d holds %q, want %q", keptSession, keptToken, data, keptData)
	}
	if err := kept.Finish(); err != nil {
		return err
	}
	guest.Pass("closed session gone (ENOENT), refused pipe absent, kept session intact and finished")
	return nil
}
