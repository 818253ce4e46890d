package manifest

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"strings"
)

// Network is the network state carried across a live update: the links,
// their addresses, the main table's routes and the policy rules. In a
// config it can also say which links to carry (Carry, Interfaces) and
// declare a static network for a cold boot.
type Network struct {
	Carry      string   `toml:"carry,omitempty"`      // config only: "all" (default), "listed" (Interfaces only) or "none"
	Interfaces []string `toml:"interfaces,omitempty"` // config only, with carry = "listed"
	Links      []Link   `toml:"link,omitempty"`
	Routes     []Route  `toml:"route,omitempty"`
	Rules      []Rule   `toml:"rule,omitempty"`
}

// Link is one network interface.
type Link struct {
	Name      string    `toml:"name"`
	Kind      string    `toml:"kind"`          // "loopback", "device" (physical), "dummy", "veth", "bridge", "vlan", "bond"
	MAC       string    `toml:"mac,omitempty"` // device: always (matched by it); virtual: only if set by hand (sysfs addr_assign_type 3)
	MTU       int       `toml:"mtu,omitempty,omitzero"`
	Up        bool      `toml:"up,omitempty"`
	Master    string    `toml:"master,omitempty"`           // the bridge or bond it is a port of
	Peer      string    `toml:"peer,omitempty"`             // veth: the other end's name
	Parent    string    `toml:"parent,omitempty"`           // vlan: the link it sits on
	VLANID    int       `toml:"vlan_id,omitempty,omitzero"` // vlan: 1..4094
	BondMode  string    `toml:"bond_mode,omitempty"`        // bond: "balance-rr", "active-backup", ...
	Addresses []Address `toml:"address,omitempty"`
}

// Address is one address of a link, with its prefix length.
type Address struct {
	CIDR  string `toml:"cidr"`            // "10.1.0.1/24", "fd00::1/64"
	Scope string `toml:"scope,omitempty"` // "global" (default), "link", "host", "site"
}

// Route is one route of the main table.
type Route struct {
	Dst     string `toml:"dst"` // "default", "default6" (IPv6 default) or a CIDR
	Gateway string `toml:"gateway,omitempty"`
	Dev     string `toml:"dev,omitempty"`
	Metric  int    `toml:"metric,omitempty,omitzero"`
	Scope   string `toml:"scope,omitempty"` // "global" (default), "link", "host"
	Src     string `toml:"src,omitempty"`
}

// Rule is one policy routing rule.
type Rule struct {
	Priority int    `toml:"priority"`
	Family   string `toml:"family"` // "inet" or "inet6"
	Src      string `toml:"src,omitempty"`
	Dst      string `toml:"dst,omitempty"`
	Table    int    `toml:"table"`
	IIF      string `toml:"iif,omitempty"`
	OIF      string `toml:"oif,omitempty"`
	Mark     uint32 `toml:"fwmark,omitempty,omitzero"`
}

// The values of Network.Carry.
const (
	CarryAll    = "all"
	CarryListed = "listed"
	CarryNone   = "none"
)

// The values of Link.Kind.
const (
	KindLoopback = "loopback"
	KindDevice   = "device"
	KindDummy    = "dummy"
	KindVeth     = "veth"
	KindBridge   = "bridge"
	KindVLAN     = "vlan"
	KindBond     = "bond"
)

// The values of Route.Dst that stand for a default route.
const (
	DefaultDst  = "default"
	DefaultDst6 = "default6"
)

var linkKinds = []string{KindLoopback, KindDevice, KindDummy, KindVeth, KindBridge, KindVLAN, KindBond}

// BondModes are the values of Link.BondMode, as the kernel names them.
var BondModes = []string{"balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb"}

var (
	addrScopes  = []string{"global", "link", "host", "site"}
	routeScopes = []string{"global", "link", "host"}
)

// ifNameMax is the longest interface name in bytes (IFNAMSIZ - 1).
const ifNameMax = 15

// ValidLinkName reports whether name can be a Linux interface name: 1 to
// 15 bytes, no '/', ':' or whitespace, not "." or "..".
func ValidLinkName(name string) bool {
	if len(name) == 0 || len(name) > ifNameMax || name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(name); i++ {
		b := name[i]
		if b <= ' ' || b == '/' || b == ':' || b >= 0x7f {
			return false
		}
	}
	return true
}

// RouteDst parses a Route's Dst: "default" is 0.0.0.0/0, "default6" ::/0.
func RouteDst(dst string) (netip.Prefix, error) {
	switch dst {
	case DefaultDst:
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0), nil
	case DefaultDst6:
		return netip.PrefixFrom(netip.IPv6Unspecified(), 0), nil
	}
	p, err := netip.ParsePrefix(dst)
	if err != nil {
		return netip.Prefix{}, err
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set (the network is %s)", dst, p.Masked())
	}
	return p, nil
}

func oneOf(v string, vals []string) bool {
	for _, s := range vals {
		if v == s {
			return true
		}
	}
	return false
}

func quoteList(vals []string) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}

func linkCtx(i int, l *Link) string {
	if ValidLinkName(l.Name) {
		return fmt.Sprintf("link %q", l.Name)
	}
	return fmt.Sprintf("network.link[%d]", i)
}

func familyOf(a netip.Addr) string {
	if a.Is4() {
		return "inet"
	}
	return "inet6"
}

func (c *checker) network(n *Network, isManifest bool) {
	if isManifest {
		if c.set("network.carry", n.Carry != "") {
			c.add("network.carry", "network", "a manifest cannot set carry; it is for the config only")
		}
		if c.set("network.interfaces", len(n.Interfaces) > 0) {
			c.add("network.interfaces", "network", "a manifest cannot set interfaces; it is for the config only")
		}
	} else {
		switch n.Carry {
		case "", CarryAll, CarryNone:
			if len(n.Interfaces) > 0 {
				c.add("network.interfaces", "network", "interfaces is only for carry %q", CarryListed).deps = []string{"network.carry"}
			}
		case CarryListed:
			if len(n.Interfaces) == 0 {
				c.add("network.carry", "network", "carry %q needs interfaces", CarryListed).deps = []string{"network.interfaces"}
			}
		default:
			c.add("network.carry", "network", "carry %q: it must be %s", n.Carry, quoteList([]string{CarryAll, CarryListed, CarryNone}))
		}
		seen := map[string]int{}
		for k, name := range n.Interfaces {
			p := fmt.Sprintf("network.interfaces[%d]", k)
			switch {
			case !ValidLinkName(name):
				if c.text(p, "network", "interface name", name) {
					c.add(p, "network", "interface name %q is not valid: 1 to %d bytes, no '/', ':' or whitespace", name, ifNameMax)
				}
			default:
				if first, dup := seen[name]; dup {
					c.add(p, "network", "interface %q is listed twice", name).ref = fmt.Sprintf("network.interfaces[%d]", first)
				} else {
					seen[name] = k
				}
			}
		}
	}

	links := map[string]int{}
	for i := range n.Links {
		l := &n.Links[i]
		lp := fmt.Sprintf("network.link[%d]", i)
		ctx := linkCtx(i, l)
		switch {
		case l.Name == "":
			c.add(lp+".name", ctx, "link name is missing")
		case !ValidLinkName(l.Name):
			if c.text(lp+".name", ctx, "link name", l.Name) {
				c.add(lp+".name", ctx, "link name %q is not valid: 1 to %d bytes, no '/', ':' or whitespace", l.Name, ifNameMax)
			}
		default:
			if first, dup := links[l.Name]; dup {
				c.add(lp+".name", "network", "link name %q is used twice", l.Name).ref = fmt.Sprintf("network.link[%d].name", first)
			} else {
				links[l.Name] = i
			}
		}
	}
	kindOf := func(name string) string {
		if i, ok := links[name]; ok {
			return n.Links[i].Kind
		}
		return ""
	}

	for i := range n.Links {
		l := &n.Links[i]
		lp := fmt.Sprintf("network.link[%d]", i)
		ctx := linkCtx(i, l)
		switch {
		case l.Kind == "":
			c.add(lp+".kind", ctx, "kind is missing: it must be one of %s", quoteList(linkKinds))
		case !oneOf(l.Kind, linkKinds):
			if c.text(lp+".kind", ctx, "kind", l.Kind) {
				c.add(lp+".kind", ctx, "kind %q: it must be one of %s", l.Kind, quoteList(linkKinds))
			}
		}
		kindDeps := []string{lp + ".kind"}
		onlyFor := func(key, kind string, set bool) {
			if c.set(lp+"."+key, set) && l.Kind != kind && l.Kind != "" {
				c.add(lp+"."+key, ctx, "%s is only for kind %q", key, kind).deps = kindDeps
			}
		}

		switch {
		case l.MAC != "":
			hw, err := net.ParseMAC(l.MAC)
			switch {
			case err != nil:
				if c.text(lp+".mac", ctx, "mac", l.MAC) {
					c.add(lp+".mac", ctx, "mac %q is not a MAC address", l.MAC).err = err
				}
			case len(hw) != 6:
				c.add(lp+".mac", ctx, "mac %q is not a 6-byte Ethernet address", l.MAC)
			}
			if l.Kind == KindLoopback {
				c.add(lp+".mac", ctx, "a loopback link has no mac").deps = kindDeps
			}
		case l.Kind == KindDevice:
			c.add(lp+".mac", ctx, "a device needs its mac: that is how it is found").deps = kindDeps
		}
		if l.MTU < 0 || l.MTU > 65536 || l.MTU > 0 && l.MTU < 68 {
			c.add(lp+".mtu", ctx, "mtu %d is out of range: 68 to 65536", l.MTU)
		}

		if l.Master != "" {
			j, listed := links[l.Master]
			switch mk := kindOf(l.Master); {
			case l.Master == l.Name:
				c.add(lp+".master", ctx, "master is the link itself")
			case !listed:
				if c.text(lp+".master", ctx, "master", l.Master) {
					c.add(lp+".master", ctx, "master %q is not a listed link", l.Master)
				}
			case mk != KindBridge && mk != KindBond:
				c.add(lp+".master", ctx, "master %q is a %s: it must be a bridge or a bond", l.Master, mk).ref = fmt.Sprintf("network.link[%d].name", j)
			case l.Kind == KindLoopback:
				c.add(lp+".master", ctx, "a loopback link cannot have a master").deps = kindDeps
			}
		}

		onlyFor("peer", KindVeth, l.Peer != "")
		if l.Kind == KindVeth {
			switch {
			case l.Peer == "":
				c.add(lp+".kind", ctx, "a veth needs peer, the other end's name").deps = []string{lp + ".peer"}
			case !ValidLinkName(l.Peer):
				if c.text(lp+".peer", ctx, "peer", l.Peer) {
					c.add(lp+".peer", ctx, "peer %q is not a valid link name", l.Peer)
				}
			case l.Peer == l.Name:
				c.add(lp+".peer", ctx, "peer is the link itself")
			default:
				if j, ok := links[l.Peer]; ok {
					p := &n.Links[j]
					if p.Kind != KindVeth || p.Peer != l.Name {
						c.add(lp+".peer", ctx, "peer %q is listed but is not a veth whose peer is %q", l.Peer, l.Name).ref = fmt.Sprintf("network.link[%d].name", j)
					}
				}
			}
		}

		onlyFor("parent", KindVLAN, l.Parent != "")
		onlyFor("vlan_id", KindVLAN, l.VLANID != 0)
		if l.Kind == KindVLAN {
			switch pk := kindOf(l.Parent); {
			case l.Parent == "":
				c.add(lp+".kind", ctx, "a vlan needs parent, the link it sits on").deps = []string{lp + ".parent"}
			case l.Parent == l.Name:
				c.add(lp+".parent", ctx, "parent is the link itself")
			case pk == "":
				c.add(lp+".parent", ctx, "parent %q is not a listed link", l.Parent)
			case pk == KindLoopback:
				c.add(lp+".parent", ctx, "parent %q is the loopback link", l.Parent).ref = fmt.Sprintf("network.link[%d].name", links[l.Parent])
			}
			if l.VLANID < 1 || l.VLANID > 4094 {
				if l.VLANID == 0 && !c.set(lp+".vlan_id", false) {
					c.add(lp+".kind", ctx, "a vlan needs vlan_id (1 to 4094)").deps = []string{lp + ".vlan_id"}
				} else {
					c.add(lp+".vlan_id", ctx, "vlan_id %d is out of range: 1 to 4094", l.VLANID)
				}
			}
		}

		onlyFor("bond_mode", KindBond, l.BondMode != "")
		if l.BondMode != "" && !oneOf(l.BondMode, BondModes) {
			if c.text(lp+".bond_mode", ctx, "bond_mode", l.BondMode) {
				c.add(lp+".bond_mode", ctx, "bond_mode %q: it must be one of %s", l.BondMode, quoteList(BondModes))
			}
		}

		addrs := map[netip.Addr]int{}
		for k := range l.Addresses {
			a := &l.Addresses[k]
			ap := fmt.Sprintf("%s.address[%d]", lp, k)
			if a.CIDR == "" {
				c.add(ap+".cidr", ctx, "address[%d]: cidr is missing", k)
			} else if p, err := netip.ParsePrefix(a.CIDR); err != nil {
				if c.text(ap+".cidr", ctx, "cidr", a.CIDR) {
					c.add(ap+".cidr", ctx, "address %q is not an address with a prefix length (like 10.1.0.1/24)", a.CIDR).err = err
				}
			} else if p.Addr().Zone() != "" {
				c.add(ap+".cidr", ctx, "address %q: a zone is not allowed", a.CIDR)
			} else if first, dup := addrs[p.Addr()]; dup {
				c.add(ap+".cidr", ctx, "address %s is listed twice", p.Addr()).ref = fmt.Sprintf("%s.address[%d].cidr", lp, first)
			} else {
				addrs[p.Addr()] = k
			}
			if a.Scope != "" && !oneOf(a.Scope, addrScopes) {
				if c.text(ap+".scope", ctx, "scope", a.Scope) {
					c.add(ap+".scope", ctx, "address scope %q: it must be one of %s", a.Scope, quoteList(addrScopes))
				}
			}
		}
	}

	type routeKey struct {
		dst    netip.Prefix
		metric int
	}
	routes := map[routeKey]int{}
	for i := range n.Routes {
		r := &n.Routes[i]
		rp := fmt.Sprintf("network.route[%d]", i)
		ctx := fmt.Sprintf("route %q", r.Dst)
		var dst netip.Prefix
		if r.Dst == "" {
			ctx = fmt.Sprintf("network.route[%d]", i)
			c.add(rp+".dst", ctx, "dst is missing: a CIDR, %q or %q", DefaultDst, DefaultDst6)
		} else if p, err := RouteDst(r.Dst); err != nil {
			if !c.text(rp+".dst", rp, "dst", r.Dst) {
				continue
			}
			c.add(rp+".dst", ctx, "dst is not a CIDR, %q or %q: %v", DefaultDst, DefaultDst6, err).err = err
		} else {
			dst = p
		}
		addr := func(key, what, s string) {
			if s == "" {
				return
			}
			a, err := netip.ParseAddr(s)
			switch {
			case err != nil:
				if c.text(rp+"."+key, ctx, what, s) {
					c.add(rp+"."+key, ctx, "%s %q is not an IP address", what, s).err = err
				}
			case a.Zone() != "":
				c.add(rp+"."+key, ctx, "%s %q: a zone is not allowed", what, s)
			case dst.IsValid() && a.Is4() != dst.Addr().Is4():
				c.add(rp+"."+key, ctx, "%s %s is %s but dst is %s", what, a, familyOf(a), familyOf(dst.Addr())).deps = []string{rp + ".dst"}
			}
		}
		addr("gateway", "gateway", r.Gateway)
		addr("src", "src", r.Src)
		if r.Dev != "" {
			if _, ok := links[r.Dev]; !ok {
				if c.text(rp+".dev", ctx, "dev", r.Dev) {
					c.add(rp+".dev", ctx, "dev %q is not a listed link", r.Dev)
				}
			}
		}
		if r.Gateway == "" && r.Dev == "" {
			c.add(rp+".dst", ctx, "a route needs gateway or dev").deps = []string{rp + ".gateway", rp + ".dev"}
		}
		if r.Metric < 0 || r.Metric > math.MaxUint32 {
			c.add(rp+".metric", ctx, "metric %d is out of range: 0 to 4294967295", r.Metric)
		}
		if r.Scope != "" && !oneOf(r.Scope, routeScopes) {
			if c.text(rp+".scope", ctx, "scope", r.Scope) {
				c.add(rp+".scope", ctx, "route scope %q: it must be one of %s", r.Scope, quoteList(routeScopes))
			}
		}
		if dst.IsValid() {
			k := routeKey{dst, r.Metric}
			if first, dup := routes[k]; dup {
				c.add(rp+".dst", ctx, "a route to %s with metric %d is listed twice", r.Dst, r.Metric).ref = fmt.Sprintf("network.route[%d].dst", first)
			} else {
				routes[k] = i
			}
		}
	}

	for i := range n.Rules {
		r := &n.Rules[i]
		rp := fmt.Sprintf("network.rule[%d]", i)
		ctx := fmt.Sprintf("rule %d", r.Priority)
		if r.Priority < 0 || r.Priority > math.MaxUint32 {
			ctx = rp
			c.add(rp+".priority", ctx, "priority %d is out of range: 0 to 4294967295", r.Priority)
		}
		switch r.Family {
		case "inet", "inet6":
		case "":
			c.add(rp+".family", ctx, "family is missing: it must be \"inet\" or \"inet6\"")
		default:
			if c.text(rp+".family", ctx, "family", r.Family) {
				c.add(rp+".family", ctx, "family %q: it must be \"inet\" or \"inet6\"", r.Family)
			}
		}
		switch {
		case r.Table == 0 && !c.set(rp+".table", false):
			c.add(rp+".priority", ctx, "table is missing").deps = []string{rp + ".table"}
		case r.Table < 1 || r.Table > math.MaxUint32:
			c.add(rp+".table", ctx, "table %d is out of range: 1 to 4294967295", r.Table)
		}
		for _, f := range []struct{ key, v string }{{"src", r.Src}, {"dst", r.Dst}} {
			if f.v == "" {
				continue
			}
			p, err := netip.ParsePrefix(f.v)
			switch {
			case err != nil:
				if c.text(rp+"."+f.key, ctx, f.key, f.v) {
					c.add(rp+"."+f.key, ctx, "%s %q is not a CIDR", f.key, f.v).err = err
				}
			case p != p.Masked():
				c.add(rp+"."+f.key, ctx, "%s %q has host bits set (the network is %s)", f.key, f.v, p.Masked())
			case r.Family == "inet" && !p.Addr().Is4() || r.Family == "inet6" && p.Addr().Is4():
				c.add(rp+"."+f.key, ctx, "%s %s is not family %s", f.key, f.v, r.Family).deps = []string{rp + ".family"}
			}
		}
		for _, f := range []struct{ key, v string }{{"iif", r.IIF}, {"oif", r.OIF}} {
			if f.v != "" && !ValidLinkName(f.v) {
				if c.text(rp+"."+f.key, ctx, f.key, f.v) {
					c.add(rp+"."+f.key, ctx, "%s %q is not a valid link name", f.key, f.v)
				}
			}
		}
	}
}
