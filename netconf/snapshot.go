package netconf

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/luoinit/luoinit/manifest"
)

// Snapshot reads links, addresses, main-table routes and policy rules
// through netlink. carry is "all" (or ""), "listed" (only the links named
// in ifaces, plus what they need: their master, parent and veth peer, and
// the routes on them) or "none" (an empty Network).
//
// State the kernel makes by itself is left out: IPv6 link-local addresses,
// the loopback's 127.0.0.1/8 and ::1 (the loopback is recorded as kind and
// up only, with any other address it has), IPv6 temporary addresses,
// routes the kernel adds for an address (protocol kernel) or from router
// advertisements, IPv6 routes to fe80::/64, multicast routes, and the
// default rules. Links of a kind the manifest cannot describe (tun,
// wireguard, ...), and veths whose peer is in another namespace, are left
// out with what sits on them.
func Snapshot(carry string, ifaces []string) (manifest.Network, error) {
	switch carry {
	case manifest.CarryNone:
		return manifest.Network{}, nil
	case "", manifest.CarryAll, manifest.CarryListed:
	default:
		return manifest.Network{}, fmt.Errorf("netconf: snapshot: carry %q: it must be %q, %q or %q", carry, manifest.CarryAll, manifest.CarryListed, manifest.CarryNone)
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return manifest.Network{}, fmt.Errorf("netconf: snapshot: netlink NewHandle: %w", err)
	}
	defer h.Close()
	n, err := snapshot(h, false)
	if err != nil {
		return manifest.Network{}, err
	}
	if carry == manifest.CarryListed {
		return listed(n, ifaces)
	}
	return n, nil
}

// listed keeps the links named, what they need, and the routes and rules
// on them.
func listed(n manifest.Network, ifaces []string) (manifest.Network, error) {
	byName := map[string]*manifest.Link{}
	for i := range n.Links {
		byName[n.Links[i].Name] = &n.Links[i]
	}
	keep := map[string]bool{}
	var todo []string
	for _, name := range ifaces {
		if byName[name] == nil {
			return manifest.Network{}, fmt.Errorf("netconf: snapshot: interface %q is listed but not there", name)
		}
		todo = append(todo, name)
	}
	for len(todo) > 0 {
		name := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if keep[name] {
			continue
		}
		keep[name] = true
		l := byName[name]
		for _, dep := range []string{l.Master, l.Parent, l.Peer} {
			if dep != "" && byName[dep] != nil && !keep[dep] {
				todo = append(todo, dep)
			}
		}
	}
	var out manifest.Network
	for _, l := range n.Links {
		if keep[l.Name] {
			out.Links = append(out.Links, l)
		}
	}
	for _, r := range n.Routes {
		if r.Dev == "" || keep[r.Dev] {
			out.Routes = append(out.Routes, r)
		}
	}
	for _, r := range n.Rules {
		if (r.IIF == "" || keep[r.IIF]) && (r.OIF == "" || keep[r.OIF]) {
			out.Rules = append(out.Rules, r)
		}
	}
	return out, nil
}

// snapshot reads everything; raw keeps what the kernel made too (for
// Plan's view of the current state in Apply).
func snapshot(h *netlink.Handle, raw bool) (manifest.Network, error) {
	var n manifest.Network
	links, err := h.LinkList()
	if err != nil {
		return n, fmt.Errorf("netconf: snapshot: LinkList: %w", err)
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	if n.Links, err = readLinks(h, links, names, raw); err != nil {
		return n, err
	}
	var kept map[string]bool
	n.Links, kept = dropOrphans(n.Links)
	if n.Routes, err = readRoutes(h, names, kept, raw); err != nil {
		return n, err
	}
	if n.Rules, err = readRules(h, raw); err != nil {
		return n, err
	}
	return n, nil
}

// readLinks describes each link the manifest can describe, with its
// addresses; names maps every ifindex to its link's name.
func readLinks(h *netlink.Handle, links []netlink.Link, names map[int]string, raw bool) ([]manifest.Link, error) {
	var out []manifest.Link
	for _, nl := range links {
		ml, ok := linkOf(nl, names)
		if !ok {
			continue
		}
		addrs, err := h.AddrList(nl, netlink.FAMILY_ALL)
		if err != nil {
			return out, fmt.Errorf("netconf: snapshot: AddrList %s: %w", ml.Name, err)
		}
		ml.Addresses = addressesOf(addrs, ml.Kind, raw)
		out = append(out, ml)
	}
	return out, nil
}

// linkOf describes a link but its addresses; ok is false for a link of a
// kind the manifest cannot describe, or a veth or vlan whose peer or
// parent is not in this namespace.
func linkOf(nl netlink.Link, names map[int]string) (ml manifest.Link, ok bool) {
	a := nl.Attrs()
	ml = manifest.Link{Name: a.Name, Up: a.Flags&net.FlagUp != 0}
	setKind(&ml, nl, names)
	if ml.Kind == "" {
		return ml, false
	}
	if ml.Kind != manifest.KindLoopback {
		ml.MTU = a.MTU
		if a.MasterIndex != 0 {
			ml.Master = names[a.MasterIndex]
		}
		ml.MAC = macOf(ml.Kind, a)
	}
	return ml, true
}

// setKind sets the link's kind and what goes with it (bond mode, veth
// peer, vlan parent and id); it leaves the kind "" for a link that cannot
// be made again here.
func setKind(ml *manifest.Link, nl netlink.Link, names map[int]string) {
	a := nl.Attrs()
	switch l := nl.(type) {
	case *netlink.Device:
		switch {
		case a.EncapType == "loopback" || a.Flags&net.FlagLoopback != 0:
			ml.Kind = manifest.KindLoopback
		case a.EncapType == "ether" && len(a.HardwareAddr) == 6:
			ml.Kind = manifest.KindDevice
		}
	case *netlink.Dummy:
		ml.Kind = manifest.KindDummy
	case *netlink.Bridge:
		ml.Kind = manifest.KindBridge
	case *netlink.Bond:
		ml.Kind = manifest.KindBond
		if l.Mode != netlink.BOND_MODE_UNKNOWN {
			ml.BondMode = l.Mode.String()
		}
	case *netlink.Veth:
		ml.Kind = manifest.KindVeth
		ml.Peer = names[a.ParentIndex]
		if a.ParentIndex == 0 || ml.Peer == "" || a.NetNsID >= 0 {
			ml.Kind = "" // the peer is elsewhere: it cannot be made again here
		}
	case *netlink.Vlan:
		ml.Kind = manifest.KindVLAN
		ml.Parent = names[a.ParentIndex]
		ml.VLANID = l.VlanId
		if ml.Parent == "" {
			ml.Kind = ""
		}
	}
}

// macOf is the MAC to record: a device's permanent one (how it is found
// again), a virtual link's only if it was set by hand.
func macOf(kind string, a *netlink.LinkAttrs) string {
	switch {
	case kind == manifest.KindDevice:
		hw := a.PermHWAddr
		if len(hw) != 6 || allZero(hw) {
			hw = a.HardwareAddr // no permanent address: the current one
		}
		return hw.String()
	case len(a.HardwareAddr) == 6 && macSetByHand(a.Name, a.Index):
		return a.HardwareAddr.String()
	}
	return ""
}

// addressesOf describes a link's addresses; unless raw, those the kernel
// made by itself are left out.
func addressesOf(addrs []netlink.Addr, kind string, raw bool) []manifest.Address {
	var out []manifest.Address
	for _, ad := range addrs {
		if ad.IPNet == nil {
			continue
		}
		pf, ok := prefixOf(ad.IPNet)
		if !ok {
			continue
		}
		if !raw && kernelAddr(pf, ad, kind) {
			continue
		}
		ma := manifest.Address{CIDR: pf.String()}
		ma.Scope, _ = scopeName(netlink.Scope(ad.Scope)) // one without a word is recorded as global
		out = append(out, ma)
	}
	return out
}

// dropOrphans leaves out a veth or vlan whose other end or parent was left
// out, until none is, and unnames a master left out. kept is the names of
// the links that stay.
func dropOrphans(links []manifest.Link) ([]manifest.Link, map[string]bool) {
	kept := map[string]bool{}
	for changed := true; changed; {
		changed = false
		for name := range kept {
			delete(kept, name)
		}
		for _, l := range links {
			kept[l.Name] = true
		}
		left := links[:0]
		for _, l := range links {
			if l.Peer != "" && !kept[l.Peer] || l.Parent != "" && !kept[l.Parent] {
				changed = true
				continue
			}
			left = append(left, l)
		}
		links = left
	}
	for i := range links {
		if m := links[i].Master; m != "" && !kept[m] {
			links[i].Master = ""
		}
	}
	return links, kept
}

// readRoutes describes the routes on the links kept, of the main table
// and of every other table but the kernel's local one (the tables of
// policy rules).
func readRoutes(h *netlink.Handle, names map[int]string, kept map[string]bool, raw bool) ([]manifest.Route, error) {
	routes, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("netconf: snapshot: RouteListFiltered (every table): %w", err)
	}
	var out []manifest.Route
	for _, r := range routes {
		if mr, ok := routeOf(r, names, kept, raw); ok {
			out = append(out, mr)
		}
	}
	return out, nil
}

// routeOf describes a route; ok is false for one the manifest does not
// describe: not a unicast route, of the local table, multipath, on a link
// not kept, with a scope Plan could not give it, or (unless raw) made by
// the kernel.
func routeOf(r netlink.Route, names map[int]string, kept map[string]bool, raw bool) (mr manifest.Route, ok bool) {
	if r.Table == unix.RT_TABLE_LOCAL || r.Table == unix.RT_TABLE_UNSPEC || r.Type != unix.RTN_UNICAST || len(r.MultiPath) > 0 {
		return mr, false
	}
	dev := names[r.LinkIndex]
	if r.LinkIndex != 0 && !kept[dev] {
		return mr, false
	}
	pf, ok := routeDst(r)
	if !ok || !raw && kernelRoute(pf, r) {
		return mr, false
	}
	scope, ok := scopeName(r.Scope)
	if _, plannable := routeScopes[scope]; !ok || !plannable {
		return mr, false // site, nowhere: Plan could not give a route that scope
	}
	mr = manifest.Route{Dst: dstName(pf), Dev: dev, Metric: r.Priority, Scope: scope}
	if r.Table != manifest.MainTable {
		mr.Table = r.Table
	}
	if len(r.Gw) > 0 {
		mr.Gateway = ipString(r.Gw)
	}
	if len(r.Src) > 0 {
		mr.Src = ipString(r.Src)
	}
	return mr, true
}

// routeDst is the route's destination, a default route's included.
func routeDst(r netlink.Route) (netip.Prefix, bool) {
	if r.Dst == nil {
		if r.Family == netlink.FAMILY_V6 {
			return netip.PrefixFrom(netip.IPv6Unspecified(), 0), true
		}
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0), true
	}
	p, ok := prefixOf(r.Dst)
	return p.Masked(), ok
}

// dstName is the manifest's Route.Dst for pf: "default" or "default6" for
// a default route.
func dstName(pf netip.Prefix) string {
	switch {
	case pf.Bits() != 0:
		return pf.String()
	case pf.Addr().Is6():
		return manifest.DefaultDst6
	}
	return manifest.DefaultDst
}

// readRules describes the policy rules, IPv4 then IPv6.
func readRules(h *netlink.Handle, raw bool) ([]manifest.Rule, error) {
	var out []manifest.Rule
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rules, err := h.RuleList(fam)
		if err != nil {
			return out, fmt.Errorf("netconf: snapshot: RuleList (%s): %w", familyName(fam), err)
		}
		for _, r := range rules {
			if mr, ok := ruleOf(r, fam, raw); ok {
				out = append(out, mr)
			}
		}
	}
	return out, nil
}

// ruleOf describes a rule of family fam; ok is false for one the manifest
// does not describe (goto, blackhole, not, ...) or (unless raw) one every
// namespace starts with.
func ruleOf(r netlink.Rule, fam int, raw bool) (mr manifest.Rule, ok bool) {
	if r.Type != 0 && r.Type != unix.FR_ACT_TO_TBL || r.Goto >= 0 || r.Invert || r.Table <= 0 || r.Priority < 0 {
		return mr, false
	}
	mr = manifest.Rule{Priority: r.Priority, Family: familyName(fam), Table: r.Table, IIF: r.IifName, OIF: r.OifName, Mark: r.Mark}
	if r.Src != nil {
		if pf, ok := prefixOf(r.Src); ok {
			mr.Src = pf.Masked().String()
		}
	}
	if r.Dst != nil {
		if pf, ok := prefixOf(r.Dst); ok {
			mr.Dst = pf.Masked().String()
		}
	}
	if !raw && defaultRule(mr) {
		return mr, false
	}
	return mr, true
}

// scopeName is the manifest's word for a netlink scope, "" for global
// (universe, the default); ok is false for a scope it has no word for.
func scopeName(s netlink.Scope) (name string, ok bool) {
	switch s {
	case netlink.SCOPE_UNIVERSE:
		return "", true
	case netlink.SCOPE_LINK:
		return "link", true
	case netlink.SCOPE_HOST:
		return "host", true
	case netlink.SCOPE_SITE:
		return "site", true
	}
	return "", false
}

func familyName(fam int) string {
	if fam == netlink.FAMILY_V6 {
		return "inet6"
	}
	return "inet"
}

// defaultRule reports whether r is one of the rules every namespace
// starts with: 0 lookup local, 32766 lookup main, 32767 lookup default.
func defaultRule(r manifest.Rule) bool {
	if r.Src != "" || r.Dst != "" || r.IIF != "" || r.OIF != "" || r.Mark != 0 {
		return false
	}
	switch r.Priority {
	case 0:
		return r.Table == unix.RT_TABLE_LOCAL
	case 32766:
		return r.Table == manifest.MainTable
	case 32767:
		return r.Table == unix.RT_TABLE_DEFAULT
	}
	return false
}

var (
	linkLocal6 = netip.MustParsePrefix("fe80::/64")
	lo4        = netip.MustParsePrefix("127.0.0.1/8")
	lo6        = netip.MustParsePrefix("::1/128")
)

// kernelAddr reports whether the kernel made the address by itself.
func kernelAddr(pf netip.Prefix, a netlink.Addr, kind string) bool {
	switch {
	case pf.Addr().Is6() && pf.Addr().IsLinkLocalUnicast() && netlink.Scope(a.Scope) == netlink.SCOPE_LINK:
		return true
	case a.Flags&unix.IFA_F_TEMPORARY != 0:
		return true
	case kind == manifest.KindLoopback && (pf == lo4 || pf == lo6):
		return true
	}
	return false
}

// kernelRoute reports whether the kernel made the route by itself.
func kernelRoute(pf netip.Prefix, r netlink.Route) bool {
	switch {
	case r.Protocol == unix.RTPROT_KERNEL, r.Protocol == unix.RTPROT_RA:
		return true
	case pf.Addr().Is6() && pf.Masked() == linkLocal6:
		return true
	case pf.Addr().IsMulticast():
		return true
	}
	return false
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if bits == 32 || a.Is4In6() {
		a = a.Unmap()
	}
	if bits != a.BitLen() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones), true
}

func ipString(ip net.IP) string {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return ip.String()
	}
	return a.Unmap().String()
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// macSetByHand reports whether a virtual link's MAC was set rather than
// made up by the kernel: sysfs addr_assign_type 3 (NET_ADDR_SET). The
// sysfs entry must be this link's (sysfs shows the namespace that mounted
// it): its ifindex is checked.
func macSetByHand(name string, index int) bool {
	dir := "/sys/class/net/" + name + "/"
	b, err := os.ReadFile(dir + "ifindex")
	if err != nil {
		return false
	}
	if i, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || i != index {
		return false
	}
	b, err = os.ReadFile(dir + "addr_assign_type")
	return err == nil && strings.TrimSpace(string(b)) == "3"
}
