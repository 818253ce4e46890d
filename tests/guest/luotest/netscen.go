package main

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// networkBefore is stage 1 of the network scenario: luotest, as PID 1,
// sets up loopback, a dummy with two IPv4 and one IPv6 address, a veth
// pair, a bridge with one veth end as port, a vlan on the dummy, a
// default and a static route; reports the netlink dump; then runs luoinit
// prepare (config [network] carry = "all") into luoinit as PID 1.
func networkBefore() error {
	if err := setupNetwork(); err != nil {
		return err
	}
	if err := netDump("before"); err != nil {
		return err
	}
	return restoreBefore()
}

func must(what string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func setupNetwork() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := must("lo up", netlink.LinkSetUp(lo)); err != nil {
		return err
	}
	dummy := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "dummy0", MTU: 1400}}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "veth0"}, PeerName: "veth1"}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	for _, l := range []netlink.Link{dummy, veth, br} {
		err := netlink.LinkAdd(l)
		if errors.Is(err, unix.EEXIST) && l == dummy {
			err = nil // a built-in dummy driver makes dummy0 at boot
		}
		if err := must("add "+l.Attrs().Name, err); err != nil {
			return err
		}
	}
	d0, _ := netlink.LinkByName("dummy0")
	if err := must("dummy0 mtu 1400", netlink.LinkSetMTU(d0, 1400)); err != nil {
		return err
	}
	vlan := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: "dummy0.100", ParentIndex: d0.Attrs().Index}, VlanId: 100}
	if err := must("add dummy0.100", netlink.LinkAdd(vlan)); err != nil {
		return err
	}
	v1, _ := netlink.LinkByName("veth1")
	b0, _ := netlink.LinkByName("br0")
	if err := must("veth1 master br0", netlink.LinkSetMaster(v1, b0)); err != nil {
		return err
	}
	for _, a := range []struct{ link, cidr string }{
		{"dummy0", "10.10.0.1/24"}, {"dummy0", "10.10.1.1/24"}, {"dummy0", "fd00:10::1/64"},
		{"br0", "10.20.0.1/24"}, {"dummy0.100", "10.30.0.1/24"},
	} {
		l, err := netlink.LinkByName(a.link)
		if err != nil {
			return err
		}
		addr, err := netlink.ParseAddr(a.cidr)
		if err != nil {
			return err
		}
		if err := must("address "+a.cidr+" on "+a.link, netlink.AddrAdd(l, addr)); err != nil {
			return err
		}
	}
	for _, name := range []string{"dummy0", "br0", "veth0", "veth1", "dummy0.100"} {
		l, _ := netlink.LinkByName(name)
		if err := must(name+" up", netlink.LinkSetUp(l)); err != nil {
			return err
		}
	}
	// A bond (active-backup) with two dummies as its ports.
	bond := netlink.NewLinkBond(netlink.LinkAttrs{Name: "bond0"})
	bond.Mode = netlink.BOND_MODE_ACTIVE_BACKUP
	err = netlink.LinkAdd(bond)
	if errors.Is(err, unix.EEXIST) {
		// A built-in bonding driver makes bond0 at boot: give it the mode.
		err = netlink.LinkModify(bond)
	}
	if err := must("add bond0", err); err != nil {
		return err
	}
	b0, _ = netlink.LinkByName("bond0")
	for _, port := range []string{"dummy1", "dummy2"} {
		if err := must("add "+port, netlink.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: port}})); err != nil {
			return err
		}
		l, _ := netlink.LinkByName(port)
		if err := must(port+" master bond0", netlink.LinkSetBondSlave(l, b0.(*netlink.Bond))); err != nil {
			return err
		}
	}
	addr, _ := netlink.ParseAddr("10.40.0.1/24")
	if err := must("address 10.40.0.1/24 on bond0", netlink.AddrAdd(b0, addr)); err != nil {
		return err
	}
	if err := must("bond0 up", netlink.LinkSetUp(b0)); err != nil {
		return err
	}
	d0, _ = netlink.LinkByName("dummy0")
	_, static, _ := net.ParseCIDR("192.168.50.0/24")
	_, other, _ := net.ParseCIDR("172.16.0.0/16")
	for _, r := range []*netlink.Route{
		{LinkIndex: d0.Attrs().Index, Gw: net.ParseIP("10.10.0.254")},
		{LinkIndex: d0.Attrs().Index, Dst: static, Gw: net.ParseIP("10.10.1.254"), Priority: 100},
		{LinkIndex: b0.Attrs().Index, Dst: other, Gw: net.ParseIP("10.40.0.254"), Table: 100},
	} {
		if err := must("route "+r.String(), netlink.RouteAdd(r)); err != nil {
			return err
		}
	}
	// A policy rule: traffic from the bond's subnet looks up table 100.
	rule := netlink.NewRule()
	rule.Family = unix.AF_INET
	_, rule.Src, _ = net.ParseCIDR("10.40.0.0/24")
	rule.Table, rule.Priority = 100, 1000
	if err := must("rule from 10.40.0.0/24 lookup 100", netlink.RuleAdd(rule)); err != nil {
		return err
	}
	// Let IPv6 duplicate address detection settle so both dumps agree.
	time.Sleep(500 * time.Millisecond)
	return nil
}

// netDump prints the network as one marker line, read by netRead, a
// reader written apart from netconf (the code under test).
func netDump(when string) error {
	lines, err := netRead()
	if err != nil {
		return err
	}
	fmt.Printf("\nLUOTEST:NETDUMP %s %s\n", when, strings.Join(lines, " | "))
	return nil
}

// netcheckMain runs as a workload of luoinit after the live update: it
// waits for the restore to finish, reports the dump, and ends the VM.
func netcheckMain() {
	takeHandoff("netcheck")
	state := waitState("finished", stateIs("finished"))
	fmt.Printf("\nLUOTEST:STATE %s\n", strings.ReplaceAll(strings.TrimSpace(state), "\n", " "))
	time.Sleep(500 * time.Millisecond) // IPv6 DAD, as before the update
	if err := netDump("after"); err != nil {
		vmEnd("FAIL", err.Error())
	}
	vmEnd("PASS", "network dumped after the live update")
}
