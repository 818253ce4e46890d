package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/luoinit/luoinit/initramfs"
	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/wellknown"
)

func cmdInitramfsBuild(args []string) error {
	fs := newFlags("initramfs build", "luoinit initramfs build -o OUT [--config FILE] [--init PROG] [--file SRC:DST]... [--symlink DST:TARGET]...\n\nThe image an image build makes once: luoinit (or PROG) as /init, the config\nat /etc/luoinit/config.toml and the workloads' files. Every live update\nboots it as it is (prepare --initrd, or /sys/firmware/initrd under\nretain_initrd); nothing of a manifest ever goes into it.")
	out := fs.String("o", "", "write the image to `OUT` (required)")
	config := fs.String("config", "", "validate `FILE` and put it at "+wellknown.Config)
	initBin := fs.String("init", "", "the program to put at /init (default: this luoinit, which must be static)")
	var files, links fileSpec
	fs.Var(&files, "file", "add the file `SRC:DST` (repeatable)")
	fs.Var(&links, "symlink", "add a symbolic link `DST:TARGET` (repeatable)")
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	if *out == "" {
		return usagef("initramfs build: -o OUT is required")
	}
	if fs.NArg() > 0 {
		return usagef("initramfs build: unexpected argument %q", fs.Arg(0))
	}
	a, err := buildArchive(*initBin, *config, files)
	if err != nil {
		return err
	}
	for i := range links.src {
		if err := a.AddSymlink(links.src[i], links.dst[i]); err != nil {
			return err
		}
	}
	if err := a.WriteFile(*out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d entries)\n", *out, len(a.Paths()))
	return nil
}

// buildArchive makes the standard luoinit image: init, the config, files.
func buildArchive(initBin, config string, files fileSpec) (*initramfs.Archive, error) {
	if config != "" {
		if _, err := manifest.LoadConfig(config); err != nil {
			return nil, err
		}
	}
	a, err := baseImage(initBin, config)
	if err != nil {
		return nil, err
	}
	if err := addFiles(a, files); err != nil {
		return nil, err
	}
	return a, nil
}

// baseImage is luoinit's image: self (a static luoinit; "" means this
// program) as /init and, if config is set, the config at
// wellknown.Config.
func baseImage(self, config string) (*initramfs.Archive, error) {
	if self == "" {
		var err error
		if self, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("finding this luoinit: %w", err)
		}
	}
	if err := initramfs.CheckStatic(self); err != nil {
		return nil, err
	}
	a := initramfs.New()
	if err := a.AddFileFrom("init", self, 0o755); err != nil {
		return nil, err
	}
	if config != "" {
		if err := a.AddFileFrom(strings.TrimPrefix(wellknown.Config, "/"), config, 0o644); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func addFiles(a *initramfs.Archive, files fileSpec) error {
	for i := range files.src {
		if err := a.AddFileFrom(files.dst[i], files.src[i], 0); err != nil {
			return err
		}
	}
	return nil
}

func cmdInitramfsAppend(args []string) error {
	fs := newFlags("initramfs append", "luoinit initramfs append -o OUT --base IMG --file SRC:DST...")
	out := fs.String("o", "", "write the image to `OUT` (required)")
	base := fs.String("base", "", "the existing image `IMG`, compressed or not; it is copied, not unpacked (required)")
	var files fileSpec
	fs.Var(&files, "file", "add the file `SRC:DST` (repeatable, at least one)")
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	switch {
	case *out == "":
		return usagef("initramfs append: -o OUT is required")
	case *base == "":
		return usagef("initramfs append: --base IMG is required")
	case len(files.src) == 0:
		return usagef("initramfs append: at least one --file SRC:DST is required")
	case fs.NArg() > 0:
		return usagef("initramfs append: unexpected argument %q", fs.Arg(0))
	}
	a := initramfs.New()
	if err := addFiles(a, files); err != nil {
		return err
	}
	if err := initramfs.Append(*out, *base, a); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%s + %d files)\n", *out, *base, len(files.src))
	return nil
}
