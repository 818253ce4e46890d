package main

import (
	"fmt"
	"os"

	"github.com/luoinit/luoinit/luo"
	"github.com/luoinit/luoinit/preflight"
	"github.com/luoinit/luoinit/prepare"
	"github.com/luoinit/luoinit/wellknown"
)

const preflightUsage = `luoinit preflight --kernel BZIMAGE [--append ARGS] [--reuse-cmdline] [options]

Check, without preserving, stopping or loading anything, that a live update
into BZIMAGE would keep the state: the checks luoinit prepare runs first.
One line per finding, "ok", "warn" or "FAIL" first:
  running kernel  /dev/liveupdate exists (booted with liveupdate=on);
  image           kexec_file_load can load it on x86-64 (bzImage setup
                  header, boot protocol 2.12+, 64-bit entry, loadable above
                  4 GiB); its payload is decompressed (gzip, xz, zstd, lz4,
                  bzip2, lzma; not lzo; at most 256 MiB) and scanned;
  KHO, LUO, memfd the compatible strings of the state the next kernel reads
                  equal those the running kernel writes (include/linux/kho/
                  abi/); memblock and reserve_mem too, as warnings;
  config          the image's embedded config (CONFIG_IKCONFIG), if any;
  initramfs       with --initrd: a newc cpio archive, or compressed with a
                  decompressor the next kernel has built in;
  command line    the next command line, as prepare composes it (liveupdate=on,
                  kho=on and luoinit.update= are always ensured), turns LUO
                  and KHO on;
  memory          the next kernel and initramfs can be loaded, fit in KHO's
                  scratch area (where debugfs shows it) and leave room
                  beside the preserved memory.
The running kernel's strings come from --running-kernel if given, else from
the record luoinit made when it loaded this kernel (the manifest's
[next_kernel], in its copy at /run/luoinit/manifest.toml), else from /boot/vmlinuz-$(uname -r); where debugfs is
mounted, KHO's outgoing tree (/sys/kernel/debug/kho/out) overrides them for
the KHO and LUO versions, since it is what the running kernel will hand
over. Without any, the next kernel is checked alone and a warning says so.

Exit status: 0 if nothing failed, 1 if the update would lose the state, 2 for
a usage error.`

func cmdPreflight(args []string) error {
	fs := newFlags("preflight", preflightUsage)
	kernel := fs.String("kernel", "", "the next kernel `BZIMAGE` (required)")
	appendArgs := fs.String("append", "", "kernel command line `ARGS` for the next kernel, as given to prepare")
	reuse := fs.Bool("reuse-cmdline", false, "start from the running kernel's /proc/cmdline, then add --append")
	running := fs.String("running-kernel", "", "the running kernel's `IMAGE`, to read the compatible strings it writes")
	initrd := fs.String("initrd", "", "the next initramfs `IMG` prepare would load (default "+prepare.DefaultInitrd+" if there): checked to be one the next kernel reads, and counted in the memory check")
	prev := fs.String("manifest", "", "the previous live update's manifest `FILE` (default "+wellknown.ManifestCopy+")")
	device := fs.String("device", luo.DefaultPath, "the LUO device `PATH`")
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	switch {
	case *kernel == "":
		return usagef("preflight: --kernel BZIMAGE is required")
	case fs.NArg() > 0:
		return usagef("preflight: unexpected argument %q", fs.Arg(0))
	}
	// What prepare would load: --initrd, else the image this kernel kept.
	if _, err := os.Stat(prepare.DefaultInitrd); *initrd == "" && err == nil {
		*initrd = prepare.DefaultInitrd
	}
	rep := preflight.Run(prepare.PreflightOptions(prepare.Options{
		Kernel: abs(*kernel), Initrd: abs(*initrd), Append: *appendArgs, ReuseCmdline: *reuse,
		RunningKernel: abs(*running), PrevManifest: *prev, Device: *device,
	}))
	for _, f := range rep.Findings {
		fmt.Fprintf(stdout, "%s\n", f)
	}
	if err := rep.Err(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "preflight: %s can take over the live update state\n", *kernel)
	return nil
}
