package manifest

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"strings"

	"golang.org/x/sys/unix"
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

// Route is one route, of the main table or of the routing table Table.
type Route struct {
	Dst     string `toml:"dst"` // "default", "default6" (IPv6 default) or a CIDR
	Gateway string `toml:"gateway,omitempty"`
	Dev     string `toml:"dev,omitempty"`
	Metric  int    `toml:"metric,omitempty,omitzero"`
	Table   int    `toml:"table,omitempty,omitzero"` // 0: the main table (254); a policy rule's table otherwise
	Scope   string `toml:"scope,omitempty"`          // "global" (default), "link", "host"
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

// bondModes are the values of Link.BondMode, as the kernel names them.
var bondModes = []string{"balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb"}

var (
	addrScopes  = []string{"global", "link", "host", "site"}
	routeScopes = []string{"global", "link", "host"}
)

// ifNameMax is the longest interface name in bytes (IFNAMSIZ - 1).
const ifNameMax = 15

// validLinkName reports whether name can be a Linux interface name: 1 to
// 15 bytes, no '/', ':' or whitespace, not "." or "..".
func validLinkName(name string) bool {
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
	if validLinkName(l.Name) {
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

// network checks a network section: the config-only fields, then each
// link against the others, then the routes and the rules.
func (c *checker) network(n *Network, isManifest bool) {
	nc := &netCheck{checker: c, n: n}
	if isManifest {
		nc.noCarry()
	} else {
		nc.carry()
		nc.interfaces()
	}
	nc.linkNames()
	for i := range n.Links {
		nc.link(i)
	}
	nc.routes()
	nc.rules()
}

// netCheck checks one network section; its methods are the steps of
// (*checker).network.
type netCheck struct {
	*checker
	n     *Network
	links map[string]int // each valid link name, first use: its index in n.Links
}

// noCarry refuses carry and interfaces in a manifest.
func (nc *netCheck) noCarry() {
	if nc.set("network.carry", nc.n.Carry != "") {
		nc.add("network.carry", "network", "a manifest cannot set carry; it is for the config only")
	}
	if nc.set("network.interfaces", len(nc.n.Interfaces) > 0) {
		nc.add("network.interfaces", "network", "a manifest cannot set interfaces; it is for the config only")
	}
}

// carry checks carry, and that interfaces goes with carry "listed".
func (nc *netCheck) carry() {
	switch n := nc.n; n.Carry {
	case "", CarryAll, CarryNone:
		if len(n.Interfaces) > 0 {
			nc.add("network.interfaces", "network", "interfaces is only for carry %q", CarryListed).deps = []string{"network.carry"}
		}
	case CarryListed:
		if len(n.Interfaces) == 0 {
			nc.add("network.carry", "network", "carry %q needs interfaces", CarryListed).deps = []string{"network.interfaces"}
		}
	default:
		nc.add("network.carry", "network", "carry %q: it must be %s", n.Carry, quoteList([]string{CarryAll, CarryListed, CarryNone}))
	}
}

// interfaces checks the names in interfaces: valid, and each listed once.
func (nc *netCheck) interfaces() {
	seen := map[string]int{}
	for k, name := range nc.n.Interfaces {
		p := fmt.Sprintf("network.interfaces[%d]", k)
		switch {
		case !validLinkName(name):
			if nc.text(p, "network", "interface name", name) {
				nc.add(p, "network", "interface name %q is not valid: 1 to %d bytes, no '/', ':' or whitespace", name, ifNameMax)
			}
		default:
			if first, dup := seen[name]; dup {
				nc.add(p, "network", "interface %q is listed twice", name).ref = fmt.Sprintf("network.interfaces[%d]", first)
			} else {
				seen[name] = k
			}
		}
	}
}

// linkNames checks each link's name and fills nc.links.
func (nc *netCheck) linkNames() {
	nc.links = map[string]int{}
	for i := range nc.n.Links {
		l := &nc.n.Links[i]
		lp := fmt.Sprintf("network.link[%d]", i)
		ctx := linkCtx(i, l)
		switch {
		case l.Name == "":
			nc.add(lp+".name", ctx, "link name is missing")
		case !validLinkName(l.Name):
			if nc.text(lp+".name", ctx, "link name", l.Name) {
				nc.add(lp+".name", ctx, "link name %q is not valid: 1 to %d bytes, no '/', ':' or whitespace", l.Name, ifNameMax)
			}
		default:
			if first, dup := nc.links[l.Name]; dup {
				nc.add(lp+".name", "network", "link name %q is used twice", l.Name).ref = fmt.Sprintf("network.link[%d].name", first)
			} else {
				nc.links[l.Name] = i
			}
		}
	}
}

// kindOf returns the kind of the listed link called name, "" if none is.
func (nc *netCheck) kindOf(name string) string {
	if i, ok := nc.links[name]; ok {
		return nc.n.Links[i].Kind
	}
	return ""
}

// link checks every field of link i but its name.
func (nc *netCheck) link(i int) {
	l := &nc.n.Links[i]
	lc := &linkCheck{netCheck: nc, l: l, lp: fmt.Sprintf("network.link[%d]", i), ctx: linkCtx(i, l)}
	lc.kind()
	lc.mac()
	lc.mtu()
	lc.master()
	lc.veth()
	lc.vlan()
	lc.bond()
	lc.addresses()
}

// linkCheck checks one link; its methods are the steps of (*netCheck).link.
type linkCheck struct {
	*netCheck
	l   *Link
	lp  string // its path: network.link[2]
	ctx string // who it is about: link "eth0"
}

// kindDeps are the fields a verdict that depends on the link's kind
// depends on.
func (lc *linkCheck) kindDeps() []string { return []string{lc.lp + ".kind"} }

// onlyFor refuses a field that is set on a link not of its kind.
func (lc *linkCheck) onlyFor(key, kind string, set bool) {
	if lc.set(lc.lp+"."+key, set) && lc.l.Kind != kind && lc.l.Kind != "" {
		lc.add(lc.lp+"."+key, lc.ctx, "%s is only for kind %q", key, kind).deps = lc.kindDeps()
	}
}

func (lc *linkCheck) kind() {
	l, lp, ctx := lc.l, lc.lp, lc.ctx
	switch {
	case l.Kind == "":
		lc.add(lp+".kind", ctx, "kind is missing: it must be one of %s", quoteList(linkKinds))
	case !oneOf(l.Kind, linkKinds):
		if lc.text(lp+".kind", ctx, "kind", l.Kind) {
			lc.add(lp+".kind", ctx, "kind %q: it must be one of %s", l.Kind, quoteList(linkKinds))
		}
	}
}

// mac checks the MAC: a device needs one, a loopback has none.
func (lc *linkCheck) mac() {
	l, lp, ctx := lc.l, lc.lp, lc.ctx
	switch {
	case l.MAC != "":
		hw, err := net.ParseMAC(l.MAC)
		switch {
		case err != nil:
			if lc.text(lp+".mac", ctx, "mac", l.MAC) {
				lc.add(lp+".mac", ctx, "mac %q is not a MAC address", l.MAC).err = err
			}
		case len(hw) != 6:
			lc.add(lp+".mac", ctx, "mac %q is not a 6-byte Ethernet address", l.MAC)
		}
		if l.Kind == KindLoopback {
			lc.add(lp+".mac", ctx, "a loopback link has no mac").deps = lc.kindDeps()
		}
	case l.Kind == KindDevice:
		lc.add(lp+".mac", ctx, "a device needs its mac: that is how it is found").deps = lc.kindDeps()
	}
}

func (lc *linkCheck) mtu() {
	if m := lc.l.MTU; m < 0 || m > 65536 || m > 0 && m < 68 {
		lc.add(lc.lp+".mtu", lc.ctx, "mtu %d is out of range: 68 to 65536", m)
	}
}

// master checks that the master is another listed link, a bridge or a
// bond.
func (lc *linkCheck) master() {
	l, lp, ctx := lc.l, lc.lp, lc.ctx
	if l.Master == "" {
		return
	}
	j, listed := lc.links[l.Master]
	switch mk := lc.kindOf(l.Master); {
	case l.Master == l.Name:
		lc.add(lp+".master", ctx, "master is the link itself")
	case !listed:
		if lc.text(lp+".master", ctx, "master", l.Master) {
			lc.add(lp+".master", ctx, "master %q is not a listed link", l.Master)
		}
	case mk != KindBridge && mk != KindBond:
		lc.add(lp+".master", ctx, "master %q is a %s: it must be a bridge or a bond", l.Master, mk).ref = fmt.Sprintf("network.link[%d].name", j)
	case l.Kind == KindLoopback:
		lc.add(lp+".master", ctx, "a loopback link cannot have a master").deps = lc.kindDeps()
	}
}

// veth checks peer: a veth needs one, and a listed peer must be a veth
// whose peer is this link.
func (lc *linkCheck) veth() {
	l, lp, ctx := lc.l, lc.lp, lc.ctx
	lc.onlyFor("peer", KindVeth, l.Peer != "")
	if l.Kind != KindVeth {
		return
	}
	switch {
	case l.Peer == "":
		lc.add(lp+".kind", ctx, "a veth needs peer, the other end's name").deps = []string{lp + ".peer"}
	case !validLinkName(l.Peer):
		if lc.text(lp+".peer", ctx, "peer", l.Peer) {
			lc.add(lp+".peer", ctx, "peer %q is not a valid link name", l.Peer)
		}
	case l.Peer == l.Name:
		lc.add(lp+".peer", ctx, "peer is the link itself")
	default:
		if j, ok := lc.links[l.Peer]; ok {
			p := &lc.n.Links[j]
			if p.Kind != KindVeth || p.Peer != l.Name {
				lc.add(lp+".peer", ctx, "peer %q is listed but is not a veth whose peer is %q", l.Peer, l.Name).ref = fmt.Sprintf("network.link[%d].name", j)
			}
		}
	}
}

// vlan checks parent and vlan_id: a vlan needs both, and its parent is
// another listed link, not the loopback.
func (lc *linkCheck) vlan() {
	l, lp, ctx := lc.l, lc.lp, lc.ctx
	lc.onlyFor("parent", KindVLAN, l.Parent != "")
	lc.onlyFor("vlan_id", KindVLAN, l.VLANID != 0)
	if l.Kind != KindVLAN {
		return
	}
	switch pk := lc.kindOf(l.Parent); {
	case l.Parent == "":
		lc.add(lp+".kind", ctx, "a vlan needs parent, the link it sits on").deps = []string{lp + ".parent"}
	case l.Parent == l.Name:
		lc.add(lp+".parent", ctx, "parent is the link itself")
	case pk == "":
		lc.add(lp+".parent", ctx, "parent %q is not a listed link", l.Parent)
	case pk == KindLoopback:
		lc.add(lp+".parent", ctx, "parent %q is the loopback link", l.Parent).ref = fmt.Sprintf("network.link[%d].name", lc.links[l.Parent])
	}
	if l.VLANID < 1 || l.VLANID > 4094 {
		if l.VLANID == 0 && !lc.set(lp+".vlan_id", false) {
			lc.add(lp+".kind", ctx, "a vlan needs vlan_id (1 to 4094)").deps = []string{lp + ".vlan_id"}
		} else {
			lc.add(lp+".vlan_id", ctx, "vlan_id %d is out of range: 1 to 4094", l.VLANID)
		}
	}
}

func (lc *linkCheck) bond() {
	l, lp, ctx := lc.l, lc.lp, lc.ctx
	lc.onlyFor("bond_mode", KindBond, l.BondMode != "")
	if l.BondMode != "" && !oneOf(l.BondMode, bondModes) {
		if lc.text(lp+".bond_mode", ctx, "bond_mode", l.BondMode) {
			lc.add(lp+".bond_mode", ctx, "bond_mode %q: it must be one of %s", l.BondMode, quoteList(bondModes))
		}
	}
}

// addresses checks each address: a prefix without a zone, listed once,
// with a known scope.
func (lc *linkCheck) addresses() {
	l, lp, ctx := lc.l, lc.lp, lc.ctx
	addrs := map[netip.Addr]int{}
	for k := range l.Addresses {
		a := &l.Addresses[k]
		ap := fmt.Sprintf("%s.address[%d]", lp, k)
		if a.CIDR == "" {
			lc.add(ap+".cidr", ctx, "address[%d]: cidr is missing", k)
		} else if p, err := netip.ParsePrefix(a.CIDR); err != nil {
			if lc.text(ap+".cidr", ctx, "cidr", a.CIDR) {
				lc.add(ap+".cidr", ctx, "address %q is not an address with a prefix length (like 10.1.0.1/24)", a.CIDR).err = err
			}
		} else if p.Addr().Zone() != "" {
			lc.add(ap+".cidr", ctx, "address %q: a zone is not allowed", a.CIDR)
		} else if first, dup := addrs[p.Addr()]; dup {
			lc.add(ap+".cidr", ctx, "address %s is listed twice", p.Addr()).ref = fmt.Sprintf("%s.address[%d].cidr", lp, first)
		} else {
			addrs[p.Addr()] = k
		}
		if a.Scope != "" && !oneOf(a.Scope, addrScopes) {
			if lc.text(ap+".scope", ctx, "scope", a.Scope) {
				lc.add(ap+".scope", ctx, "address scope %q: it must be one of %s", a.Scope, quoteList(addrScopes))
			}
		}
	}
}

// routeKey is what makes two routes the same route.
type routeKey struct {
	dst    netip.Prefix
	metric int
	table  int
}

// TableOrMain is the route's routing table: Table, or the main table (254).
func (r Route) TableOrMain() int {
	if r.Table == 0 {
		return MainTable
	}
	return r.Table
}

// MainTable is the kernel's main routing table (RT_TABLE_MAIN); the local
// table (RT_TABLE_LOCAL) is the kernel's own and no route of a config's.
const (
	MainTable  = unix.RT_TABLE_MAIN
	localTable = unix.RT_TABLE_LOCAL
)

func (nc *netCheck) routes() {
	seen := map[routeKey]int{}
	for i := range nc.n.Routes {
		nc.route(i, seen)
	}
}

// route checks route i; seen holds the routes before it, to find one
// listed twice.
func (nc *netCheck) route(i int, seen map[routeKey]int) {
	r := &nc.n.Routes[i]
	rc := &routeCheck{netCheck: nc, r: r, rp: fmt.Sprintf("network.route[%d]", i), ctx: fmt.Sprintf("route %q", r.Dst)}
	if !rc.dst() {
		return
	}
	rc.addr("gateway", r.Gateway)
	rc.addr("src", r.Src)
	rc.dev()
	if r.Gateway == "" && r.Dev == "" {
		rc.add(rc.rp+".dst", rc.ctx, "a route needs gateway or dev").deps = []string{rc.rp + ".gateway", rc.rp + ".dev"}
	}
	if r.Metric < 0 || r.Metric > math.MaxUint32 {
		rc.add(rc.rp+".metric", rc.ctx, "metric %d is out of range: 0 to 4294967295", r.Metric)
	}
	rc.scope()
	if t := r.Table; t < 0 || t > math.MaxUint32 || t == localTable {
		rc.add(rc.rp+".table", rc.ctx, "table %d: it must be 1 to 4294967295 and not 255 (the kernel's local table); leave it out for the main table", t)
	}
	rc.unique(i, seen)
}

// routeCheck checks one route; its methods are the steps of
// (*netCheck).route.
type routeCheck struct {
	*netCheck
	r      *Route
	rp     string       // its path: network.route[1]
	ctx    string       // who it is about: route "default"
	parsed netip.Prefix // dst parsed, if it is valid
}

// dst checks and parses dst; false if it is not valid UTF-8, when nothing
// more is said of the route.
func (rc *routeCheck) dst() bool {
	r, rp := rc.r, rc.rp
	if r.Dst == "" {
		rc.ctx = rp
		rc.add(rp+".dst", rc.ctx, "dst is missing: a CIDR, %q or %q", DefaultDst, DefaultDst6)
	} else if p, err := RouteDst(r.Dst); err != nil {
		if !rc.text(rp+".dst", rp, "dst", r.Dst) {
			return false
		}
		rc.add(rp+".dst", rc.ctx, "dst is not a CIDR, %q or %q: %v", DefaultDst, DefaultDst6, err).err = err
	} else {
		rc.parsed = p
	}
	return true
}

// addr checks the gateway or src: an IP address without a zone, of dst's
// family.
func (rc *routeCheck) addr(key, s string) {
	if s == "" {
		return
	}
	rp, ctx, dst := rc.rp, rc.ctx, rc.parsed
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		if rc.text(rp+"."+key, ctx, key, s) {
			rc.add(rp+"."+key, ctx, "%s %q is not an IP address", key, s).err = err
		}
	case a.Zone() != "":
		rc.add(rp+"."+key, ctx, "%s %q: a zone is not allowed", key, s)
	case dst.IsValid() && a.Is4() != dst.Addr().Is4():
		rc.add(rp+"."+key, ctx, "%s %s is %s but dst is %s", key, a, familyOf(a), familyOf(dst.Addr())).deps = []string{rp + ".dst"}
	}
}

func (rc *routeCheck) dev() {
	if dev := rc.r.Dev; dev != "" {
		if _, ok := rc.links[dev]; !ok {
			if rc.text(rc.rp+".dev", rc.ctx, "dev", dev) {
				rc.add(rc.rp+".dev", rc.ctx, "dev %q is not a listed link", dev)
			}
		}
	}
}

func (rc *routeCheck) scope() {
	if s := rc.r.Scope; s != "" && !oneOf(s, routeScopes) {
		if rc.text(rc.rp+".scope", rc.ctx, "scope", s) {
			rc.add(rc.rp+".scope", rc.ctx, "route scope %q: it must be one of %s", s, quoteList(routeScopes))
		}
	}
}

// unique refuses a second route to the same dst with the same metric.
func (rc *routeCheck) unique(i int, seen map[routeKey]int) {
	if !rc.parsed.IsValid() {
		return
	}
	k := routeKey{rc.parsed, rc.r.Metric, rc.r.TableOrMain()}
	if first, dup := seen[k]; dup {
		rc.add(rc.rp+".dst", rc.ctx, "a route to %s with metric %d in table %d is listed twice", rc.r.Dst, rc.r.Metric, k.table).ref = fmt.Sprintf("network.route[%d].dst", first)
	} else {
		seen[k] = i
	}
}

func (nc *netCheck) rules() {
	for i := range nc.n.Rules {
		nc.rule(i)
	}
}

// rule checks rule i.
func (nc *netCheck) rule(i int) {
	r := &nc.n.Rules[i]
	rc := &ruleCheck{netCheck: nc, r: r, rp: fmt.Sprintf("network.rule[%d]", i), ctx: fmt.Sprintf("rule %d", r.Priority)}
	rc.priority()
	rc.family()
	rc.table()
	rc.prefix("src", r.Src)
	rc.prefix("dst", r.Dst)
	rc.linkName("iif", r.IIF)
	rc.linkName("oif", r.OIF)
}

// ruleCheck checks one rule; its methods are the steps of (*netCheck).rule.
type ruleCheck struct {
	*netCheck
	r   *Rule
	rp  string // its path: network.rule[0]
	ctx string // who it is about: rule 100
}

func (rc *ruleCheck) priority() {
	if p := rc.r.Priority; p < 0 || p > math.MaxUint32 {
		rc.ctx = rc.rp
		rc.add(rc.rp+".priority", rc.ctx, "priority %d is out of range: 0 to 4294967295", p)
	}
}

func (rc *ruleCheck) family() {
	switch f := rc.r.Family; f {
	case "inet", "inet6":
	case "":
		rc.add(rc.rp+".family", rc.ctx, "family is missing: it must be \"inet\" or \"inet6\"")
	default:
		if rc.text(rc.rp+".family", rc.ctx, "family", f) {
			rc.add(rc.rp+".family", rc.ctx, "family %q: it must be \"inet\" or \"inet6\"", f)
		}
	}
}

func (rc *ruleCheck) table() {
	switch t := rc.r.Table; {
	case t == 0 && !rc.set(rc.rp+".table", false):
		rc.add(rc.rp+".priority", rc.ctx, "table is missing").deps = []string{rc.rp + ".table"}
	case t < 1 || t > math.MaxUint32:
		rc.add(rc.rp+".table", rc.ctx, "table %d is out of range: 1 to 4294967295", t)
	}
}

// prefix checks src or dst: a CIDR without host bits, of the rule's
// family.
func (rc *ruleCheck) prefix(key, v string) {
	if v == "" {
		return
	}
	rp, ctx, fam := rc.rp, rc.ctx, rc.r.Family
	p, err := netip.ParsePrefix(v)
	switch {
	case err != nil:
		if rc.text(rp+"."+key, ctx, key, v) {
			rc.add(rp+"."+key, ctx, "%s %q is not a CIDR", key, v).err = err
		}
	case p != p.Masked():
		rc.add(rp+"."+key, ctx, "%s %q has host bits set (the network is %s)", key, v, p.Masked())
	case fam == "inet" && !p.Addr().Is4() || fam == "inet6" && p.Addr().Is4():
		rc.add(rp+"."+key, ctx, "%s %s is not family %s", key, v, fam).deps = []string{rp + ".family"}
	}
}

// linkName checks iif or oif: a valid link name (it need not be listed).
func (rc *ruleCheck) linkName(key, v string) {
	if v != "" && !validLinkName(v) {
		if rc.text(rc.rp+"."+key, rc.ctx, key, v) {
			rc.add(rc.rp+"."+key, rc.ctx, "%s %q is not a valid link name", key, v)
		}
	}
}
