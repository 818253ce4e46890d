package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// netRead reads the network as the host's network scenario compares it,
// apart from netconf: every link from rtnetlink and /sys/class/net (kind,
// MAC if permanent or set by hand, MTU, up or down, master; a bond's mode and ports from the bonding
// driver's sysfs files; a vlan's id and parent), every address but the
// kernel's IPv6 link-local ones, every route of every table but those the
// kernel makes for addresses, and every policy rule but the kernel's
// defaults. One sorted line per item, names instead of ifindexes (they
// change across a reboot).
func netRead() ([]string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("RTM_GETLINK dump: %w", err)
	}
	name := map[int]string{}
	for _, l := range links {
		name[l.Attrs().Index] = l.Attrs().Name
	}
	var out []string
	for _, l := range links {
		a := l.Attrs()
		sys := func(f string) string {
			b, _ := os.ReadFile(filepath.Join("/sys/class/net", a.Name, f))
			return strings.TrimSpace(string(b))
		}
		// The MAC as docs/manifest.md promises to carry it: a device's
		// permanent one (addr_assign_type 0) and one set by hand (3); a
		// virtual link's random or borrowed MAC is its kernel's to choose.
		mac := "-"
		if t := sys("addr_assign_type"); t == "0" || t == "3" {
			mac = sys("address")
		}
		line := fmt.Sprintf("link %s type %s mac %s mtu %s flags-up %v", a.Name, l.Type(), mac, sys("mtu"), a.Flags&net.FlagUp != 0)
		if m, err := filepath.EvalSymlinks(filepath.Join("/sys/class/net", a.Name, "master")); err == nil {
			line += " master " + filepath.Base(m)
		}
		if v, ok := l.(*netlink.Vlan); ok {
			line += fmt.Sprintf(" vlan %d parent %s", v.VlanId, name[a.ParentIndex])
		}
		if l.Type() == "bond" {
			line += " bond_mode " + strings.Fields(sys("bonding/mode") + " ?")[0]
			ports := strings.Fields(sys("bonding/slaves"))
			slices.Sort(ports)
			line += " ports " + strings.Join(ports, ",")
		}
		out = append(out, line)
	}
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		addrs, err := netlink.AddrList(nil, fam)
		if err != nil {
			return nil, fmt.Errorf("RTM_GETADDR dump: %w", err)
		}
		for _, a := range addrs {
			if a.IP.IsLinkLocalUnicast() {
				continue
			}
			out = append(out, fmt.Sprintf("addr %s on %s", a.IPNet, name[a.LinkIndex]))
		}
	}
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		routes, err := netlink.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return nil, fmt.Errorf("RTM_GETROUTE dump: %w", err)
		}
		for _, r := range routes {
			// The kernel's own: local and broadcast routes, the routes of
			// each address's prefix, IPv6 link-local and multicast.
			if r.Protocol == unix.RTPROT_KERNEL || r.Table == unix.RT_TABLE_LOCAL || r.Type != unix.RTN_UNICAST {
				continue
			}
			dst := "default"
			if r.Dst != nil {
				if ones, _ := r.Dst.Mask.Size(); ones > 0 {
					dst = r.Dst.String()
				}
			}
			out = append(out, fmt.Sprintf("route %s via %s dev %s table %d metric %d", dst, r.Gw, name[r.LinkIndex], r.Table, r.Priority))
		}
	}
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		rules, err := netlink.RuleList(fam)
		if err != nil {
			return nil, fmt.Errorf("RTM_GETRULE dump: %w", err)
		}
		for _, r := range rules {
			if r.Table == unix.RT_TABLE_LOCAL || r.Table == unix.RT_TABLE_MAIN || r.Table == unix.RT_TABLE_DEFAULT {
				continue // the kernel's three default rules
			}
			src := "all"
			if r.Src != nil {
				src = r.Src.String()
			}
			out = append(out, fmt.Sprintf("rule pref %d from %s lookup %d", r.Priority, src, r.Table))
		}
	}
	slices.Sort(out)
	return out, nil
}
