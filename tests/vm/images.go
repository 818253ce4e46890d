package vm

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/luoinit/luoinit/initramfs"
)

// Guest paths of what a kexec scenario needs in its first initramfs.
const (
	GuestKernel     = "/boot/bzImage"
	GuestInitramfs2 = "/boot/initramfs2.cpio"
)

// File is an extra file for a guest image: a copy of Host, or a symlink
// to Link.
type File struct{ Guest, Host, Link string }

// BuildStatic builds the Go package pkg (an import path or ./dir relative
// to the module root) as a static binary at out, with go build flags
// (e.g. -tags) if given.
func BuildStatic(pkg, out string, flags ...string) error {
	// Stripped: the guests need no symbols, and a smaller initramfs boots
	// faster under emulation.
	args := append([]string{"build", "-trimpath", "-ldflags=-s -w", "-o", out}, flags...)
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if root, err := ModuleRoot(); err == nil {
		cmd.Dir = root
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// ModuleRoot returns the directory of the luoinit go.mod.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the luoinit module")
	}
	return filepath.Dir(mod), nil
}

// KexecImages writes the two initramfs images of a guest that kexecs into
// the same kernel: the second holds init alone; the first holds init, the
// kernel at GuestKernel, the second image at GuestInitramfs2 and the extra
// files (guest path: host path). It returns the first image's path.
func KexecImages(dir, init, kernel string, extra ...File) (string, error) {
	return KexecImagesTo(dir, init, init, kernel, extra...)
}

// KexecImagesTo is KexecImages with another program, next, as the
// second initramfs's /init.
func KexecImagesTo(dir, init, next, kernel string, extra ...File) (string, error) {
	second, err := Image(dir, "initramfs2.cpio", File{Guest: "init", Host: next})
	if err != nil {
		return "", err
	}
	return Image(dir, "initramfs1.cpio", append([]File{
		{Guest: "init", Host: init},
		{Guest: GuestKernel, Host: kernel},
		{Guest: GuestInitramfs2, Host: second},
	}, extra...)...)
}

// ImageFiles lists the paths an initramfs (newc, uncompressed) holds.
func ImageFiles(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var names []string
	err = cpio.ForEachRecord(cpio.Newc.Reader(f), func(r cpio.Record) error {
		names = append(names, r.Name)
		return nil
	})
	return names, err
}

// Image writes an initramfs with the given files (guest path: host path)
// to dir/name and returns its path.
func Image(dir, name string, files ...File) (string, error) {
	a := initramfs.New()
	for _, f := range files {
		add := func() error { return a.AddFileFrom(f.Guest, f.Host, 0) }
		if f.Link != "" {
			add = func() error { return a.AddSymlink(f.Guest, f.Link) }
		}
		if err := add(); err != nil {
			return "", err
		}
	}
	p := filepath.Join(dir, name)
	if err := a.WriteFile(p); err != nil {
		return "", err
	}
	return p, nil
}
