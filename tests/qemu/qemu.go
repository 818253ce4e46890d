// Package qemu gives the VM tests a QEMU new enough for the cpr-reboot
// migration mode, unpacked from Debian's packages by fetch.sh and run
// through its own dynamic loader, and a firmware guest (guest.S) whose RAM
// and counters show whether a save and restore kept them:
//
//	in, err := qemu.Fetch(cache)
//	fw, err := qemu.BuildFirmware(dir, 16, qemu.DefaultWait)
//	argv := in.Argv("", "-nodefaults", "-display", "none", "-bios", fw, "-serial", "stdio")
//	cmd := exec.Command(argv[0], argv[1:]...)
//	serial := qemu.ReadSerial(stdout)
//	st, _, err := serial.NextStatus(10 * time.Second)
package qemu

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// Install is a QEMU tree unpacked by fetch.sh.
type Install struct {
	Root    string // the tree on this machine: usr/bin/qemu-system-x86_64 and all it loads
	Version string // the Debian version of qemu-system-x86, e.g. 1:11.1.3+ds-1
}

// Paths inside the tree. The loader and libraries are the tree's own, so
// QEMU runs the same on any x86-64 Linux, a test VM's included.
const (
	treeLoader = "usr/lib64/ld-linux-x86-64.so.2"
	treeLibs   = "usr/lib/x86_64-linux-gnu"
	treeBinary = "usr/bin/qemu-system-x86_64"
)

// treeData are the directories QEMU looks for firmware and option ROMs in;
// Debian's build looks in /usr/share/qemu and /usr/share/seabios.
var treeData = []string{"usr/share/qemu", "usr/share/seabios"}

// Fetch runs tests/qemu/fetch.sh with cache as its CACHE_DIR (it downloads
// and unpacks once, then reuses the tree) and returns the tree. It needs
// the luoinit source tree, which it finds from the working directory up.
func Fetch(cache string) (Install, error) {
	script, err := fetchScript()
	if err != nil {
		return Install{}, err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(script, cache)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return Install{}, fmt.Errorf("%s %s: %w\n%s", script, cache, err, lastLines(stderr.String(), 20))
	}
	in := Install{Root: strings.TrimSpace(stdout.String())}
	v, err := os.ReadFile(filepath.Join(in.Root, "version"))
	if err != nil {
		return Install{}, fmt.Errorf("%s printed %q: %w", script, in.Root, err)
	}
	in.Version = strings.TrimSpace(string(v))
	return in, nil
}

// DefaultCache is the cache directory the tests use: $LUOINIT_CACHE, as
// make sets it, else luoinit in the user's cache directory (make's default
// too).
func DefaultCache() string {
	if c := os.Getenv("LUOINIT_CACHE"); c != "" {
		return c
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "luoinit")
}

// Argv returns the command line that runs the tree's qemu-system-x86_64
// with args, through the tree's dynamic loader and libraries and with the
// tree's firmware directories, the tree being at prefix: a directory the
// tree is copied to (a guest disk's mount point, say), or "" for Root.
func (in Install) Argv(prefix string, args ...string) []string {
	if prefix == "" {
		prefix = in.Root
	}
	at := func(p string) string { return path.Join(prefix, p) }
	argv := []string{
		at(treeLoader),
		"--library-path", at(treeLibs),
		// QEMU itself then sees its own name; it finds its data through
		// the -L options, not through argv[0].
		"--argv0", at(treeBinary),
		at(treeBinary),
	}
	for _, d := range treeData {
		argv = append(argv, "-L", at(d))
	}
	return append(argv, args...)
}

// fetchScript finds tests/qemu/fetch.sh above the working directory. (A go
// test runs in its package's directory inside the module.)
func fetchScript() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		p := filepath.Join(dir, "tests", "qemu", "fetch.sh")
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("no tests/qemu/fetch.sh in the module at %s: %w", dir, err)
			}
			return p, nil
		}
		if dir == filepath.Dir(dir) {
			return "", errors.New("tests/qemu/fetch.sh: not inside the luoinit source tree (from " + wd + " up)")
		}
	}
}

// lastLines is the end of s, n lines at most.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
