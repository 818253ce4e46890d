package vm

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// KVDemoConfig is the config of the kvcache demo: kvcache, whose arena
// memfd crosses the live updates, and the luotest "demo" driver, which
// fills it, runs `luoinit prepare` into the same image (the kernel keeps
// it at /sys/firmware/initrd), and after each live update reads every key
// back (updates times in a row). extra is more config (workloads) after
// these two.
func KVDemoConfig(updates int, extra string, demoArgs ...string) string {
	demoStop := ""
	if slices.Contains(demoArgs, "--agent") {
		// An update agent that outlives SIGTERM while its prepare runs:
		// a freeze that waited for it would take this long.
		demoStop = "stop_timeout = \"60s\"\n"
	}
	args := ""
	for _, a := range demoArgs {
		args += fmt.Sprintf(", %q", a)
	}
	return fmt.Sprintf(`version = 1

[[workload]]
name = "kvcache"
argv = ["/bin/kvcache", "--listen", "/run/kvcache.sock", "--arena-size", "64MiB", "--name", "kvcache"]
handoff = "socket"

  [[workload.fd]]
  name = "arena"

[[workload]]
name = "demo"
argv = ["/bin/luotest", "workload", "demo", "--updates", "%d"%s]
handoff = "socket"
%s`, updates, args, demoStop) + extra
}

// KVDemoImage builds luoinit, kvcache and luotest and writes the demo's
// initramfs to dir with `luoinit initramfs build`, once: luoinit as /init
// (and /bin/luoinit), the two programs, the config and the kernel at
// GuestKernel; every live update boots the same image again.
func KVDemoImage(dir, kernel string, updates int) (string, error) {
	return KVDemoImageFor(dir, KVDemo{Next: kernel, Updates: updates})
}

// KVDemo says what goes into a demo image besides the programs.
type KVDemo struct {
	Next string // the kernel each prepare kexecs into (GuestKernel)
	// Running, if set, is the kernel the VM boots: its image goes in at
	// /boot/vmlinuz-<release>, where the preflight reads what the running
	// kernel writes.
	Running  *Kernel
	Updates  int
	DemoArgs []string // more arguments of the demo workload (--append, --expect-refusal)
	// Extra files go into the image too, ExtraConfig into the config.
	Extra       []File
	ExtraConfig string
	// RootTree, if set, is a directory that receives the programs
	// (luoinit too, at /bin/luoinit), the config and the kernels, as a
	// root filesystem's tree (see RootTree); the initramfs then holds
	// luoinit alone as /init, and InitramfsExtra.
	RootTree       string
	InitramfsExtra []File
}

// KVDemoImageFor builds the demo's initramfs as d says.
func KVDemoImageFor(dir string, d KVDemo) (string, error) {
	bins := map[string]string{}
	for name, pkg := range map[string]string{"luoinit": "./init", "kvcache": "./examples/kvcache", "luotest": "./tests/guest/luotest"} {
		bins[name] = filepath.Join(dir, name)
		if err := BuildStatic(pkg, bins[name]); err != nil {
			return "", err
		}
	}
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(KVDemoConfig(d.Updates, d.ExtraConfig, d.DemoArgs...)), 0o644); err != nil {
		return "", err
	}
	files := append([]File{
		{Guest: "bin/kvcache", Host: bins["kvcache"]},
		{Guest: "bin/luotest", Host: bins["luotest"]},
		{Guest: GuestKernel, Host: d.Next},
	}, d.Extra...)
	if d.Running != nil {
		files = append(files, File{Guest: "boot/vmlinuz-" + d.Running.Version, Host: d.Running.BzImage})
	}
	img := filepath.Join(dir, "kvdemo.cpio")
	args := []string{"initramfs", "build", "-o", img, "--init", bins["luoinit"]}
	if d.RootTree != "" {
		files = append(files, File{Guest: "bin/luoinit", Host: bins["luoinit"]})
		if err := RootTree(d.RootTree, KVDemoConfig(d.Updates, d.ExtraConfig, d.DemoArgs...), files...); err != nil {
			return "", err
		}
		files = d.InitramfsExtra
	} else {
		// luoinit once: /bin/luoinit is /init.
		args = append(args, "--config", cfg, "--symlink", "bin/luoinit:/init")
	}
	for _, f := range files {
		if f.Link != "" {
			args = append(args, "--symlink", f.Guest+":"+f.Link)
			continue
		}
		args = append(args, "--file", f.Host+":"+f.Guest)
	}
	if out, err := exec.Command(bins["luoinit"], args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("luoinit %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return img, nil
}
