// Command demo shows a live update in a VM with readable output.
//
// By default (`make demo`): luoinit boots as PID 1 and starts kvcache, a
// key-value store that keeps its data in a memfd; 1000 keys are stored;
// `luoinit prepare` preserves kvcache's memfd and kexecs into the same
// kernel; luoinit restores it, kvcache gets its memfd back and every key
// is read back. A report gives keys before and after, the generation,
// the restore time inside init and the blackout, measured inside the
// guest and from the host.
//
// With -proof it runs the luo proof scenario instead (two memfds in two
// sessions across a kexec, with the luo package alone).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/luoinit/luoinit/tests/vm"
)

func main() {
	proof := flag.Bool("proof", false, "run the luo proof scenario instead of the kvcache live update")
	flag.Parse()
	f := runKV
	if *proof {
		f = run
	}
	if err := f(); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	d, err := newDemo()
	if err != nil {
		return err
	}
	defer d.close()
	k, dir := d.k, d.dir
	fmt.Printf("luoinit demo: live update with preserved memfds on Linux %s\n", k.Version)
	guestBin := filepath.Join(dir, "luotest")
	if err := vm.BuildStatic("./tests/guest/luotest", guestBin); err != nil {
		return err
	}
	img, err := vm.KexecImages(dir, guestBin, k.BzImage)
	if err != nil {
		return err
	}
	fmt.Println("booting the VM (software emulation unless KVM works here); the guest preserves")
	fmt.Println("a 64 MiB patterned memfd and a sealed memfd, then kexecs into the same kernel")
	fmt.Println()
	res, err := vm.Run(context.Background(), vm.Config{
		Kernel:    k.BzImage,
		Initramfs: img,
		Append:    "liveupdate=on luotest.scenario=proof",
		Log: func(format string, args ...any) {
			line := fmt.Sprintf(format, args...)
			fmt.Fprintln(d.log, line)
			show(line)
		},
	})
	if err != nil {
		return err
	}
	fmt.Println()
	fmt.Printf("kernels booted: %d   accelerator: %s   wall time: %v\n", res.Boots, res.Accel, res.Elapsed.Round(time.Millisecond))
	if kx, st := res.Find("KEXEC"), res.Find("STAGE"); len(kx) == 1 && len(st) == 2 {
		fmt.Printf("kexec call to the new kernel's init, seen from the host: %v\n", (st[1].At - kx[0].At).Round(time.Millisecond))
	}
	fmt.Printf("full serial console: %s\n", d.logPath)
	if !res.Passed {
		return fmt.Errorf("FAILED: %s", res.Message)
	}
	fmt.Printf("PASSED: %s\n", res.Message)
	return nil
}

// show prints the guest's markers and the kernel's live update lines.
func show(line string) {
	if m, ok := vm.ParseMarker(line); ok {
		at := line[:strings.Index(line, "]")+1]
		switch m.Kind {
		case "STAGE":
			if m.Text == "1" {
				fmt.Printf("%s --- first kernel: preserving ---\n", at)
			} else {
				fmt.Printf("%s --- second kernel (after kexec): restoring ---\n", at)
			}
		case "PASS", "FAIL":
		default:
			fmt.Printf("%s %s\n", at, m.Text)
		}
		return
	}
	for _, k := range []string{"Linux version", "liveupdate", "KHO", "kexec"} {
		if strings.Contains(line, k) {
			fmt.Println(line)
			return
		}
	}
}

// demo is what both demos set up: the kernel, a work directory and the
// file that keeps the whole serial console.
type demo struct {
	k       *vm.Kernel
	dir     string
	log     *os.File
	logPath string
}

func newDemo() (*demo, error) {
	k, err := vm.FindKernel()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "luoinit-demo")
	if err != nil {
		return nil, err
	}
	d := &demo{k: k, dir: dir, logPath: filepath.Join(os.TempDir(), "luoinit-demo-console.log")}
	if d.log, err = os.Create(d.logPath); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return d, nil
}

func (d *demo) close() {
	d.log.Close()
	os.RemoveAll(d.dir)
}
