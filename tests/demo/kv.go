package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/luoinit/luoinit/tests/vm"
)

func runKV() error {
	d, err := newDemo()
	if err != nil {
		return err
	}
	defer d.close()
	k := d.k
	fmt.Printf("luoinit demo: kvcache across a live update on Linux %s\n", k.Version)
	first, err := vm.KVDemoImage(d.dir, k.BzImage, 1)
	if err != nil {
		return err
	}
	fmt.Println("booting: luoinit is PID 1 and starts kvcache; 1000 keys go in; then a live update")
	fmt.Println()
	var frozenAt, ackedAt time.Duration
	res, err := vm.Run(context.Background(), vm.Config{
		Kernel:    k.BzImage,
		Initramfs: first,
		Append:    "liveupdate=on",
		Log: func(format string, args ...any) {
			line := fmt.Sprintf(format, args...)
			fmt.Fprintln(d.log, line)
			at, text := splitAt(line)
			switch {
			case strings.Contains(text, "prepare: phase frozen"):
				frozenAt = at
			case strings.Contains(text, `workload "kvcache"`) && strings.Contains(text, "acknowledged"):
				ackedAt = at
			}
			showKV(line)
		},
	})
	if err != nil {
		return err
	}
	fmt.Println()
	before, after, state := "?", "?", map[string]string{}
	if m := res.Find("DEMO_BEFORE"); len(m) == 1 {
		before = strings.TrimPrefix(m[0].Text, "keys=")
	}
	if m := res.Find("DEMO_AFTER"); len(m) == 1 {
		after, _, _ = strings.Cut(strings.TrimPrefix(m[0].Text, "keys="), " ")
	}
	if m := res.Find("DEMO_STATE"); len(m) == 1 {
		for _, kv := range strings.Fields(m[0].Text) {
			k, v, _ := strings.Cut(kv, "=")
			state[k] = v
		}
	}
	ns := func(k string) time.Duration { n, _ := strconv.ParseInt(state[k], 10, 64); return time.Duration(n) }
	fmt.Println("report")
	fmt.Printf("  keys before the live update:   %s\n", before)
	fmt.Printf("  keys after, every one verified: %s\n", after)
	fmt.Printf("  generation:                     %s\n", state["generation"])
	fmt.Printf("  luoinit state:                  %s (boot %s)\n", state["state"], state["boot"])
	fmt.Printf("  restore inside init:            %v to retrieve every fd, %v to the last handoff\n", ns("restore_ns").Round(time.Microsecond), ns("handoff_done_ns").Round(time.Microsecond))
	guestBlackout := ns("blackout_ns")
	fmt.Printf("  blackout, guest clocks:         %v = %v (old kernel: first stop to reboot call) + %v (new kernel: boot to kvcache's ACK)\n",
		guestBlackout.Round(time.Millisecond), ns("old_kernel_blackout_ns").Round(time.Millisecond), ns("last_ready_boottime_ns").Round(time.Millisecond))
	if frozenAt > 0 && ackedAt > frozenAt {
		host := ackedAt - frozenAt
		fmt.Printf("  blackout, host serial stamps:   %v (from prepare's freeze line to kvcache's ACK line)\n", host.Round(time.Millisecond))
		fmt.Printf("  difference, unseen by the guest: %v (kexec and firmware-less boot until the new kernel's clock starts)\n", (host - guestBlackout).Round(time.Millisecond))
	}
	if m := res.Find("DEMO_INITRD"); len(m) == 2 {
		same := "the same image"
		if m[0].Text != m[1].Text {
			same = "DIFFERENT images"
		}
		fmt.Printf("  initramfs booted, before/after: %s: %s\n", same, m[1].Text)
	}
	fmt.Printf("  kernels booted: %d, accelerator: %s, wall time: %v\n", res.Boots, res.Accel, res.Elapsed.Round(time.Millisecond))
	fmt.Printf("full serial console: %s\n", d.logPath)
	if !res.Passed {
		return fmt.Errorf("FAILED: %s", res.Message)
	}
	if before != after || before == "?" {
		return fmt.Errorf("FAILED: %s keys before, %s after", before, after)
	}
	fmt.Printf("PASSED: %s\n", res.Message)
	return nil
}

// splitAt splits the harness's "[  1.234s] text" into time and text.
func splitAt(line string) (time.Duration, string) {
	i := strings.Index(line, "s] ")
	if !strings.HasPrefix(line, "[") || i < 0 {
		return 0, line
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(line[1:i]), 64)
	if err != nil {
		return 0, line
	}
	return time.Duration(f * float64(time.Second)), line[i+3:]
}

func showKV(line string) {
	_, text := splitAt(line)
	if m, ok := vm.ParseMarker(line); ok {
		switch m.Kind {
		case "DEMO_BEFORE", "DEMO_AFTER", "DEMO_STATE":
			fmt.Printf("%s\n", line)
		}
		return
	}
	for _, k := range []string{"Linux version", "luoinit:", "prepare:", "kvcache"} {
		if strings.Contains(text, k) {
			fmt.Println(line)
			return
		}
	}
}
