package main

// The prepare command's behaviour against a real kernel is covered by the
// VM scenarios TestPrepare, TestPrepareCancel and TestPrepareRefused in
// tests/scenarios.

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func capture(t *testing.T) (*bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var o, e bytes.Buffer
	stdout, stderr = &o, &e
	t.Cleanup(func() { stdout, stderr = os.Stdout, os.Stderr })
	return &o, &e
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"initramfs", "--help"}} {
		o, _ := capture(t)
		if err := run(args); err != nil {
			t.Fatalf("run(%q) = %v", args, err)
		}
		for _, want := range []string{"luoinit prepare", "luoinit preflight", "initramfs build", "initramfs append", "manifest check", "manifest show"} {
			if !strings.Contains(o.String(), want) {
				t.Errorf("run(%q) output lacks %q", args, want)
			}
		}
	}
	o, _ := capture(t)
	if err := run([]string{"prepare", "--help"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"-kernel", "-dry-run", "-no-reboot", "SIGUSR1", "pidfd_getfd", "-reuse-cmdline", "-running-kernel", "Preflight"} {
		if !strings.Contains(o.String(), want) {
			t.Errorf("prepare --help lacks %q", want)
		}
	}
	o, _ = capture(t)
	if err := run([]string{"preflight", "--help"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"-kernel", "-append", "-reuse-cmdline", "-running-kernel", "256 MiB", "kho=on", "Exit status"} {
		if !strings.Contains(o.String(), want) {
			t.Errorf("preflight --help lacks %q", want)
		}
	}
}

// luoinit preflight on a file that is no kernel: every finding on its own
// line, exit 1 with the refusal.
func TestPreflightNotAKernel(t *testing.T) {
	o, _ := capture(t)
	k := filepath.Join(t.TempDir(), "bzImage")
	os.WriteFile(k, []byte("not a kernel"), 0o644)
	err := run([]string{"preflight", "--kernel", k, "--device", filepath.Join(t.TempDir(), "absent")})
	if err == nil || !strings.Contains(err.Error(), "preflight refused the live update") {
		t.Fatalf("run = %v, want the refusal", err)
	}
	for _, want := range []string{"FAIL running kernel: ", "no LUO device", "FAIL image: " + k + ": not a bzImage", "ok   command line: \"liveupdate=on kho=on luoinit.update=1\""} {
		if !strings.Contains(o.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, o)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no command"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"initramfs"}, "which one"},
		{[]string{"initramfs", "build"}, "-o OUT is required"},
		{[]string{"initramfs", "build", "-o", "x", "--file", "nocolon"}, "SRC:DST"},
		{[]string{"initramfs", "append", "-o", "x"}, "--base IMG is required"},
		{[]string{"initramfs", "append", "-o", "x", "--base", "y"}, "at least one --file"},
		{[]string{"manifest", "check"}, "one FILE expected"},
		{[]string{"prepare", "--kernel", "k"}, "--config FILE is required"},
		{[]string{"preflight"}, "--kernel BZIMAGE is required"},
		{[]string{"preflight", "--kernel", "k", "extra"}, `unexpected argument "extra"`},
		{[]string{"prepare", "--config", "c"}, "--kernel BZIMAGE is required"},
		{[]string{"prepare", "--config", "c", "--kernel", "k", "--dry-run", "--no-reboot"}, "exclude each other"},
		{[]string{"prepare", "--config", "c", "--kernel", "k", "--initrd-from-root"}, "flag provided but not defined: -initrd-from-root"},
		{[]string{"manifest", "show", "a", "b"}, "at most one FILE expected"},
	} {
		capture(t)
		err := run(tc.args)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q) = %v, want a usage error with %q", tc.args, err, tc.want)
		}
	}
}

// staticProgram builds a tiny static program to stand in for /init.
func staticProgram(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	os.WriteFile(src, []byte("package main\nfunc main() {}\n"), 0o644)
	out := filepath.Join(dir, "init")
	cmd := exec.Command("go", "build", "-o", out, src)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building a static program: %v\n%s", err, b)
	}
	return out
}

func TestInitramfsBuildReproducible(t *testing.T) {
	init := staticProgram(t)
	dir := t.TempDir()
	extra := filepath.Join(dir, "extra")
	os.WriteFile(extra, []byte("extra file"), 0o600)
	var imgs [][]byte
	for _, out := range []string{"a.cpio", "b.cpio"} {
		capture(t)
		p := filepath.Join(dir, out)
		if err := run([]string{"initramfs", "build", "-o", p, "--init", init, "--file", extra + ":/etc/extra", "--symlink", "bin/luoinit:/init"}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, b)
		// The source's times must not reach the image.
		later := time.Now().Add(72 * time.Hour)
		os.Chtimes(extra, later, later)
	}
	if !bytes.Equal(imgs[0], imgs[1]) {
		t.Fatal("two builds of the same initramfs differ")
	}
	if !bytes.Contains(imgs[0], []byte("extra file")) || !bytes.Contains(imgs[0], []byte("etc/extra")) {
		t.Fatal("the --file is not in the image")
	}
	if !regexp.MustCompile("bin/luoinit\x00+/init").Match(imgs[0]) {
		t.Fatal("the --symlink is not in the image")
	}
}

func TestInitramfsBuildRefusesDynamicInit(t *testing.T) {
	capture(t)
	err := run([]string{"initramfs", "build", "-o", filepath.Join(t.TempDir(), "x"), "--init", "/bin/sh"})
	if err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Fatalf("building with a dynamic /init: %v", err)
	}
}

func TestInitramfsAppend(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	os.WriteFile(base, []byte("BASEIMAGE"), 0o644)
	f := filepath.Join(dir, "m.toml")
	os.WriteFile(f, []byte("version = 1\n"), 0o644)
	out := filepath.Join(dir, "out")
	capture(t)
	if err := run([]string{"initramfs", "append", "-o", out, "--base", base, "--file", f + ":etc/luoinit/manifest.toml"}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	if !bytes.HasPrefix(b, []byte("BASEIMAGE\x00\x00\x00070701")) || !bytes.Contains(b, []byte("etc/luoinit/manifest.toml")) {
		t.Fatalf("appended image starts %q", b[:min(len(b), 24)])
	}
}

const validManifest = `version = 1
generation = 2
written = 2026-11-22T03:00:00Z
kernel_release = "7.3.4"

[[workload]]
name = "kv"
argv = ["/usr/bin/kv"]
uid = 0
gid = 0
handoff = "socket"
session = "luoinit.kv"

  [[workload.fd]]
  name = "arena"
  token = 1
  kind = "memfd"

  [[workload.fd]]
  name = "index"
  token = %d
  kind = "memfd"
`

func TestManifestCheckAndShow(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	dup := filepath.Join(dir, "dup.toml")
	os.WriteFile(good, []byte(strings.Replace(validManifest, "%d", "2", 1)), 0o644)
	os.WriteFile(dup, []byte(strings.Replace(validManifest, "%d", "1", 1)), 0o644)

	o, e := capture(t)
	if err := run([]string{"manifest", "check", good}); err != nil {
		t.Fatalf("check of a valid manifest: %v (%s)", err, e)
	}
	if !strings.Contains(o.String(), "valid") {
		t.Errorf("check output %q", o)
	}

	_, e = capture(t)
	err := run([]string{"manifest", "check", dup})
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("check of a duplicate token: %v, want exit status 1", err)
	}
	if want := dup + ":21:"; !strings.Contains(e.String(), want) || !strings.Contains(e.String(), "token 1") {
		t.Errorf("check output %q does not name %q and the token", e, want)
	}

	o, _ = capture(t)
	if err := run([]string{"manifest", "show", good}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kv", "luoinit.kv", "arena", "index", "7.3.4"} {
		if !strings.Contains(o.String(), want) {
			t.Errorf("show output lacks %q:\n%s", want, o)
		}
	}
}

// TestHelpOnce: every command's --help prints its usage once, and its
// options as the README writes them (--flag).
func TestHelpOnce(t *testing.T) {
	oneDash := regexp.MustCompile(`(?m)^\s+-[a-z]`)
	for _, args := range [][]string{
		{"prepare"}, {"preflight"}, {"status"}, {"initramfs", "build"}, {"initramfs", "append"}, {"manifest", "check"}, {"manifest", "show"},
	} {
		o, _ := capture(t)
		if err := run(append(args, "--help")); err != nil {
			t.Fatalf("%v --help: %v", args, err)
		}
		out := o.String()
		if n := strings.Count(out, "Usage:"); n != 1 {
			t.Errorf("%v --help prints its usage %d times:\n%s", args, n, out)
		}
		if oneDash.MatchString(out) {
			t.Errorf("%v --help writes an option with one dash:\n%s", args, out)
		}
	}
	o, _ := capture(t)
	run([]string{"prepare", "--help"})
	if !strings.Contains(o.String(), "  --initrd IMG\n") {
		t.Errorf("prepare --help does not list --initrd IMG:\n%s", o)
	}
}
