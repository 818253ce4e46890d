package prepare

import (
	"fmt"
	"os"

	"github.com/u-root/u-root/pkg/boot/kexec"
	"golang.org/x/sys/unix"
)

// kexecLoad loads kernel and initrd for the next reboot(KEXEC).
func kexecLoad(kernel, initrd, cmdline string) error {
	k, err := os.Open(kernel)
	if err != nil {
		return fmt.Errorf("kernel: %w", err)
	}
	defer k.Close()
	i, err := os.Open(initrd)
	if err != nil {
		return fmt.Errorf("initrd: %w", err)
	}
	defer i.Close()
	return kexec.FileLoad(k, i, cmdline)
}

// kexecUnload unloads whatever kexec_file_load loaded.
func kexecUnload() error {
	if err := unix.KexecFileLoad(-1, -1, "", unix.KEXEC_FILE_UNLOAD|unix.KEXEC_FILE_NO_INITRAMFS); err != nil {
		return fmt.Errorf("SYS_kexec_file_load(-1, -1, \"\", KEXEC_FILE_UNLOAD) = %w", err)
	}
	return nil
}
