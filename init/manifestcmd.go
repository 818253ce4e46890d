package main

import (
	"fmt"

	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/wellknown"
)

func cmdManifestCheck(args []string) error {
	fs := newFlags("manifest check", "luoinit manifest check FILE")
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("manifest check: one FILE expected")
	}
	if _, err := manifest.Load(fs.Arg(0)); err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return exitError{1}
	}
	fmt.Fprintf(stdout, "%s: valid\n", fs.Arg(0))
	return nil
}

func cmdManifestShow(args []string) error {
	fs := newFlags("manifest show", "luoinit manifest show [FILE]\n\nFILE defaults to "+wellknown.ManifestCopy+", the copy PID 1 writes of the manifest it\nread from luoinit's own LUO session after a live update.")
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return usagef("manifest show: at most one FILE expected")
	}
	path := wellknown.ManifestCopy
	if fs.NArg() == 1 {
		path = fs.Arg(0)
	}
	m, err := manifest.Load(path)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, m.Summary())
	return nil
}
