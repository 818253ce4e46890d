// Package kmsgclock says when the kernel ran /init, on CLOCK_BOOTTIME, for
// the guest programs of make perf and the VM scenarios.
package kmsgclock

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Now is CLOCK_BOOTTIME in ns.
func Now() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return ts.Nano()
}

// InitExec returns when the kernel ran /init, on CLOCK_BOOTTIME (ns). The
// kernel says when in its "Run /init as init process" line, but on the
// printk clock, which under emulation drifts from CLOCK_BOOTTIME by up to
// a third (a TSC calibrated against a slow timer). So two records,
// "<who>: clock mark 1" and "2", are written to /dev/kmsg a second apart,
// each between two reads of CLOCK_BOOTTIME, and the line's printk stamp is
// mapped through the line those two points draw.
// tests/perf/raw/rawluo.c does the same.
func InitExec(who string) (int64, error) {
	mark := func(tag string) (int64, error) {
		fd, err := unix.Open("/dev/kmsg", unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, err
		}
		defer unix.Close(fd)
		before := Now()
		_, err = unix.Write(fd, []byte("<6>"+who+": clock mark "+tag+"\n"))
		return (before + Now()) / 2, err
	}
	t1, err := mark("1")
	if err != nil {
		return 0, err
	}
	time.Sleep(time.Second)
	t2, err := mark("2")
	if err != nil {
		return 0, err
	}
	run, mark1, mark2 := "Run /init as init process", who+": clock mark 1", who+": clock mark 2"
	stamps := map[string]int64{}
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	buf := make([]byte, 2048)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EPIPE {
			continue // records overwritten under us
		}
		if err != nil || n <= 0 {
			break
		}
		head, msg, _ := strings.Cut(string(buf[:n]), ";")
		f := strings.Split(head, ",")
		if len(f) < 3 {
			continue
		}
		us, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			continue
		}
		for _, key := range []string{run, mark1, mark2} {
			if strings.HasPrefix(msg, key) {
				stamps[key] = us * 1000
			}
		}
	}
	p0, p1, p2 := stamps[run], stamps[mark1], stamps[mark2]
	if p0 == 0 || p1 == 0 || p2 <= p1 {
		return 0, fmt.Errorf("kmsg stamps missing: %v", stamps)
	}
	return t1 + int64(float64(p0-p1)*float64(t2-t1)/float64(p2-p1)), nil
}
