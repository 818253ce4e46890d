package vm

import (
	"fmt"
	"os"
	"path/filepath"
)

// KVDemoConfig is the config of the kvcache demo: kvcache, whose arena
// memfd crosses the live updates, and the luotest "demo" driver, which
// fills it, runs `luoinit prepare --initrd-from-root`, and after each live
// update reads every key back (updates times in a row).
func KVDemoConfig(updates int) string {
	return fmt.Sprintf(`version = 1

[[workload]]
name = "kvcache"
argv = ["/bin/kvcache", "--listen", "/run/kvcache.sock", "--arena-size", "64MiB", "--name", "kvcache"]
handoff = "socket"

  [[workload.fd]]
  name = "arena"

[[workload]]
name = "demo"
argv = ["/bin/luotest", "workload", "demo", "--updates", "%d"]
handoff = "socket"
`, updates)
}

// KVDemoImage builds luoinit, kvcache and luotest and writes the demo's
// initramfs to dir: luoinit as /init (and /bin/luoinit), the two programs,
// the config and the kernel at GuestKernel, so that the running root can
// be carried whole into each next kernel.
func KVDemoImage(dir, kernel string, updates int) (string, error) {
	bins := map[string]string{}
	for name, pkg := range map[string]string{"luoinit": "./init", "kvcache": "./examples/kvcache", "luotest": "./tests/guest/luotest"} {
		bins[name] = filepath.Join(dir, name)
		if err := BuildStatic(pkg, bins[name]); err != nil {
			return "", err
		}
	}
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(KVDemoConfig(updates)), 0o644); err != nil {
		return "", err
	}
	img, err := Image(dir, "kvdemo.cpio",
		File{Guest: "init", Host: bins["luoinit"]},
		File{Guest: "bin/kvcache", Host: bins["kvcache"]},
		File{Guest: "bin/luotest", Host: bins["luotest"]},
		File{Guest: "etc/luoinit/config.toml", Host: cfg},
		File{Guest: GuestKernel, Host: kernel},
		// luoinit once: /bin/luoinit is /init.
		File{Guest: "bin/luoinit", Link: "/init"})
	return img, err
}
