package netconf

import (
	"errors"
	"fmt"
	"time"

	"github.com/u-root/uio/ulog"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/luoinit/luoinit/manifest"
)

// Apply puts want in place in the current network namespace: it reads the
// current state, plans (see Plan) and runs each op. An op that fails is
// logged, naming its link, address or route, and the rest still run; ops
// that need a link whose create failed (or that is missing) are skipped
// with a log line. A route or address the kernel already has (EEXIST) is
// taken as done. applied counts the ops run without error.
func Apply(want manifest.Network, log ulog.Logger) (applied int, errs []error, took time.Duration) {
	start := time.Now()
	if log == nil {
		log = ulog.Null
	}
	defer func() { took = time.Since(start) }()
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		err = fmt.Errorf("netconf: apply: netlink NewHandle: %w", err)
		log.Printf("network: %v", err)
		return 0, []error{err}, 0
	}
	defer h.Close()
	read := func() (manifest.Network, error) { return snapshot(h, true) }
	if LoopbackOnly(want) {
		read = func() (manifest.Network, error) { return loopbackState(h) }
	}
	cur, err := read()
	if err != nil {
		err = fmt.Errorf("netconf: apply: %w", err)
		log.Printf("network: %v", err)
		return 0, []error{err}, 0
	}
	applied, errs = run(h, Plan(cur, want), log)
	return applied, errs, 0
}

// run runs ops in order; see Apply.
func run(h *netlink.Handle, ops []Op, log ulog.Logger) (applied int, errs []error) {
	failed := map[string]bool{} // links that do not exist after a failed create or a missing device
	for _, op := range ops {
		if op.Action == ActMissing {
			failed[op.Link] = true
		}
		skip := ""
		for _, need := range op.needs {
			if failed[need] {
				skip = need
				break
			}
		}
		if skip != "" {
			log.Printf("network: skip %s: link %s was not made", op, skip)
			for _, m := range op.makes {
				failed[m] = true
			}
			continue
		}
		if op.apply == nil {
			continue
		}
		err := op.apply(h)
		switch {
		case err == nil:
			applied++
			log.Printf("network: %s", op)
		case errors.Is(err, unix.EEXIST) && (op.Action == ActAddRoute || op.Action == ActAddAddr || op.Action == ActAddRule):
			log.Printf("network: %s: already there", op)
		default:
			log.Printf("network: %s failed: %v", op, err)
			errs = append(errs, err)
			for _, m := range op.makes {
				failed[m] = true
			}
		}
	}
	return applied, errs
}

// LoopbackOnly reports whether want asks for nothing but the loopback with
// the addresses the kernel gives it (a cold boot's empty network, or a
// system whose network is only lo): then Plan needs to know only lo, and
// reading the whole network first is not needed. PID 1 does this before
// any workload starts, so it is worth reading less. Such a network is
// applied through netlink alone: it needs nothing mounted (no /sys).
func LoopbackOnly(want manifest.Network) bool {
	if len(want.Routes) > 0 || len(want.Rules) > 0 {
		return false
	}
	for _, l := range want.Links {
		if l.Kind != manifest.KindLoopback || l.Name != "lo" || len(l.Addresses) > 0 || l.MTU != 0 {
			return false
		}
	}
	return true
}

// loopbackState reads the one link a LoopbackOnly want is about, as
// snapshot would describe it: Plan needs nothing else to decide.
func loopbackState(h *netlink.Handle) (manifest.Network, error) {
	link, err := h.LinkByName("lo")
	if err != nil {
		return manifest.Network{}, fmt.Errorf("netlink LinkByName(lo): %w", err)
	}
	ml, ok := linkOf(link, map[int]string{link.Attrs().Index: "lo"})
	if !ok {
		return manifest.Network{}, errors.New("lo is not a loopback link")
	}
	return manifest.Network{Links: []manifest.Link{ml}}, nil
}
