package netconf

import (
	"net"
	"reflect"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/luoinit/luoinit/manifest"
)

// The steps of snapshot that take netlink values, on what a namespace
// test cannot make everywhere (vlans, bonds, a veth whose peer is in
// another namespace, routes and rules the manifest does not describe).
// TestApplyInNetns covers reading them from the kernel.

func attrs(name string, index int, f func(*netlink.LinkAttrs)) netlink.LinkAttrs {
	a := netlink.NewLinkAttrs()
	a.Name, a.Index, a.MTU = name, index, 1500
	if f != nil {
		f(&a)
	}
	return a
}

func mac(s string) net.HardwareAddr {
	hw, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return hw
}

func TestLinkOf(t *testing.T) {
	names := map[int]string{1: "lo", 2: "eth0", 3: "br0", 4: "v1"}
	for _, tc := range []struct {
		name string
		l    netlink.Link
		want manifest.Link // Kind "": left out
	}{
		{"loopback: kind and up only", &netlink.Device{LinkAttrs: attrs("lo", 1, func(a *netlink.LinkAttrs) {
			a.EncapType, a.Flags, a.MTU, a.MasterIndex = "loopback", net.FlagUp|net.FlagLoopback, 65536, 3
		})}, manifest.Link{Name: "lo", Kind: "loopback", Up: true}},
		{"device: permanent mac", &netlink.Device{LinkAttrs: attrs("eth0", 2, func(a *netlink.LinkAttrs) {
			a.EncapType, a.HardwareAddr, a.PermHWAddr = "ether", mac("02:00:00:00:00:09"), mac("52:54:00:00:00:01")
		})}, manifest.Link{Name: "eth0", Kind: "device", MAC: "52:54:00:00:00:01", MTU: 1500}},
		{"device: no permanent mac", &netlink.Device{LinkAttrs: attrs("eth0", 2, func(a *netlink.LinkAttrs) {
			a.EncapType, a.HardwareAddr, a.PermHWAddr = "ether", mac("02:00:00:00:00:09"), mac("00:00:00:00:00:00")
		})}, manifest.Link{Name: "eth0", Kind: "device", MAC: "02:00:00:00:00:09", MTU: 1500}},
		{"device not ethernet", &netlink.Device{LinkAttrs: attrs("ib0", 5, func(a *netlink.LinkAttrs) {
			a.EncapType = "infiniband"
		})}, manifest.Link{}},
		{"dummy in a bridge", &netlink.Dummy{LinkAttrs: attrs("d0", 6, func(a *netlink.LinkAttrs) { a.MasterIndex = 3 })},
			manifest.Link{Name: "d0", Kind: "dummy", MTU: 1500, Master: "br0"}},
		// This name has no sysfs entry: the MAC is not known to be set by
		// hand, so it is not recorded.
		{"dummy's own mac", &netlink.Dummy{LinkAttrs: attrs("luoinit-none0", 6, func(a *netlink.LinkAttrs) {
			a.HardwareAddr = mac("02:00:00:00:00:07")
		})}, manifest.Link{Name: "luoinit-none0", Kind: "dummy", MTU: 1500}},
		{"bridge", &netlink.Bridge{LinkAttrs: attrs("br0", 3, nil)}, manifest.Link{Name: "br0", Kind: "bridge", MTU: 1500}},
		{"bond", &netlink.Bond{LinkAttrs: attrs("bond0", 7, nil), Mode: netlink.BOND_MODE_802_3AD},
			manifest.Link{Name: "bond0", Kind: "bond", MTU: 1500, BondMode: "802.3ad"}},
		{"bond, mode unknown", &netlink.Bond{LinkAttrs: attrs("bond0", 7, nil), Mode: netlink.BOND_MODE_UNKNOWN},
			manifest.Link{Name: "bond0", Kind: "bond", MTU: 1500}},
		{"veth", &netlink.Veth{LinkAttrs: attrs("v0", 8, func(a *netlink.LinkAttrs) { a.ParentIndex = 4 })},
			manifest.Link{Name: "v0", Kind: "veth", MTU: 1500, Peer: "v1"}},
		{"veth, peer in another namespace", &netlink.Veth{LinkAttrs: attrs("v0", 8, func(a *netlink.LinkAttrs) { a.ParentIndex, a.NetNsID = 4, 0 })},
			manifest.Link{}},
		{"veth, peer unknown", &netlink.Veth{LinkAttrs: attrs("v0", 8, func(a *netlink.LinkAttrs) { a.ParentIndex = 99 })},
			manifest.Link{}},
		{"veth, no peer index", &netlink.Veth{LinkAttrs: attrs("v0", 8, nil)}, manifest.Link{}},
		{"vlan", &netlink.Vlan{LinkAttrs: attrs("eth0.7", 9, func(a *netlink.LinkAttrs) { a.ParentIndex = 2 }), VlanId: 7},
			manifest.Link{Name: "eth0.7", Kind: "vlan", MTU: 1500, Parent: "eth0", VLANID: 7}},
		{"vlan, parent unknown", &netlink.Vlan{LinkAttrs: attrs("x.7", 9, func(a *netlink.LinkAttrs) { a.ParentIndex = 99 }), VlanId: 7},
			manifest.Link{}},
		{"tun", &netlink.Tuntap{LinkAttrs: attrs("tun0", 10, nil)}, manifest.Link{}},
	} {
		got, ok := linkOf(tc.l, names)
		if ok != (tc.want.Kind != "") || ok && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, got, ok, tc.want)
		}
	}
}

func TestAddressesOf(t *testing.T) {
	ipnet := func(s string) *net.IPNet {
		ip, n, err := net.ParseCIDR(s)
		if err != nil {
			panic(err)
		}
		n.IP = ip
		return n
	}
	in := []netlink.Addr{
		{IPNet: ipnet("10.0.0.1/24")},
		{IPNet: ipnet("10.0.5.1/24"), Scope: int(netlink.SCOPE_LINK)},
		{IPNet: ipnet("10.0.6.1/24"), Scope: int(netlink.SCOPE_HOST)},
		{IPNet: ipnet("fd01::1/64"), Scope: int(netlink.SCOPE_SITE)},
		{IPNet: ipnet("10.0.7.1/24"), Scope: int(netlink.SCOPE_NOWHERE)},
		{IPNet: ipnet("fe80::1/64"), Scope: int(netlink.SCOPE_LINK)},
		{IPNet: ipnet("fd00::1234/64"), Flags: unix.IFA_F_TEMPORARY},
		{IPNet: ipnet("127.0.0.1/8"), Scope: int(netlink.SCOPE_HOST)},
		{},
	}
	kept := []manifest.Address{
		{CIDR: "10.0.0.1/24"}, {CIDR: "10.0.5.1/24", Scope: "link"}, {CIDR: "10.0.6.1/24", Scope: "host"},
		{CIDR: "fd01::1/64", Scope: "site"}, {CIDR: "10.0.7.1/24"},
	}
	for _, tc := range []struct {
		name string
		kind string
		raw  bool
		want []manifest.Address
	}{
		// 127.0.0.1/8 is the kernel's only on the loopback.
		{"dummy", "dummy", false, append(kept[:5:5], manifest.Address{CIDR: "127.0.0.1/8", Scope: "host"})},
		{"loopback", "loopback", false, kept},
		{"raw", "loopback", true, append(kept[:5:5],
			manifest.Address{CIDR: "fe80::1/64", Scope: "link"}, manifest.Address{CIDR: "fd00::1234/64"}, manifest.Address{CIDR: "127.0.0.1/8", Scope: "host"})},
	} {
		if got := addressesOf(in, tc.kind, tc.raw); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got\n%+v\nwant\n%+v", tc.name, got, tc.want)
		}
	}
}

func TestDropOrphans(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []manifest.Link
		want []manifest.Link
	}{
		{"nothing to drop", []manifest.Link{
			{Name: "v0", Kind: "veth", Peer: "v1", Master: "br0"}, {Name: "v1", Kind: "veth", Peer: "v0"}, {Name: "br0", Kind: "bridge"},
		}, []manifest.Link{
			{Name: "v0", Kind: "veth", Peer: "v1", Master: "br0"}, {Name: "v1", Kind: "veth", Peer: "v0"}, {Name: "br0", Kind: "bridge"},
		}},
		// A vlan on a vlan on a veth whose peer was left out: the veth
		// goes, then each vlan in turn, whatever the order.
		{"chain", []manifest.Link{
			{Name: "v.1.2", Kind: "vlan", Parent: "v.1", VLANID: 2},
			{Name: "v.1", Kind: "vlan", Parent: "v", VLANID: 1},
			{Name: "v", Kind: "veth", Peer: "elsewhere"},
			{Name: "d0", Kind: "dummy"},
		}, []manifest.Link{{Name: "d0", Kind: "dummy"}}},
		{"master left out", []manifest.Link{{Name: "d0", Kind: "dummy", Master: "team0"}},
			[]manifest.Link{{Name: "d0", Kind: "dummy"}}},
		{"master dropped", []manifest.Link{
			{Name: "d0", Kind: "dummy", Master: "br0.5"}, {Name: "br0.5", Kind: "vlan", Parent: "br0", VLANID: 5},
		}, []manifest.Link{{Name: "d0", Kind: "dummy"}}},
	} {
		got, kept := dropOrphans(tc.in)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
		if len(kept) != len(tc.want) {
			t.Errorf("%s: kept %v", tc.name, kept)
		}
		for _, l := range tc.want {
			if !kept[l.Name] {
				t.Errorf("%s: kept %v lacks %s", tc.name, kept, l.Name)
			}
		}
	}
}

func TestRouteOf(t *testing.T) {
	names := map[int]string{2: "eth0", 3: "tun0"}
	kept := map[string]bool{"eth0": true}
	route := func(f func(*netlink.Route)) netlink.Route {
		r := netlink.Route{Table: manifest.MainTable, Type: unix.RTN_UNICAST, LinkIndex: 2, Family: netlink.FAMILY_V4,
			Dst: &net.IPNet{IP: net.IPv4(10, 50, 0, 0).To4(), Mask: net.CIDRMask(16, 32)}}
		if f != nil {
			f(&r)
		}
		return r
	}
	for _, tc := range []struct {
		name string
		r    netlink.Route
		raw  bool
		want manifest.Route // Dst "": left out
	}{
		{"plain", route(nil), false, manifest.Route{Dst: "10.50.0.0/16", Dev: "eth0"}},
		{"gateway, src, metric", route(func(r *netlink.Route) {
			r.Gw, r.Src, r.Priority = net.IPv4(10, 0, 0, 1), net.IPv4(10, 0, 0, 2), 100
		}), false, manifest.Route{Dst: "10.50.0.0/16", Dev: "eth0", Gateway: "10.0.0.1", Src: "10.0.0.2", Metric: 100}},
		{"host bits masked", route(func(r *netlink.Route) { r.Dst.IP = net.IPv4(10, 50, 1, 2).To4() }), false,
			manifest.Route{Dst: "10.50.0.0/16", Dev: "eth0"}},
		{"default", route(func(r *netlink.Route) { r.Dst, r.LinkIndex, r.Gw = nil, 0, net.IPv4(10, 0, 0, 1) }), false,
			manifest.Route{Dst: "default", Gateway: "10.0.0.1"}},
		{"default6", route(func(r *netlink.Route) { r.Dst, r.Family, r.Gw = nil, netlink.FAMILY_V6, net.ParseIP("fd00::1") }), false,
			manifest.Route{Dst: "default6", Dev: "eth0", Gateway: "fd00::1"}},
		{"scope link", route(func(r *netlink.Route) { r.Scope = netlink.SCOPE_LINK }), false,
			manifest.Route{Dst: "10.50.0.0/16", Dev: "eth0", Scope: "link"}},
		{"scope host", route(func(r *netlink.Route) { r.Scope = netlink.SCOPE_HOST }), false,
			manifest.Route{Dst: "10.50.0.0/16", Dev: "eth0", Scope: "host"}},
		{"scope site", route(func(r *netlink.Route) { r.Scope = netlink.SCOPE_SITE }), true, manifest.Route{}},
		{"scope nowhere", route(func(r *netlink.Route) { r.Scope = netlink.SCOPE_NOWHERE }), true, manifest.Route{}},
		{"a rule's table", route(func(r *netlink.Route) { r.Table = 100 }), false, manifest.Route{Dst: "10.50.0.0/16", Dev: "eth0", Table: 100}},
		{"local table", route(func(r *netlink.Route) { r.Table = unix.RT_TABLE_LOCAL }), true, manifest.Route{}},
		{"blackhole", route(func(r *netlink.Route) { r.Type = unix.RTN_BLACKHOLE }), true, manifest.Route{}},
		{"multipath", route(func(r *netlink.Route) { r.MultiPath = []*netlink.NexthopInfo{{LinkIndex: 2}} }), true, manifest.Route{}},
		{"on a link left out", route(func(r *netlink.Route) { r.LinkIndex = 3 }), true, manifest.Route{}},
		{"kernel's", route(func(r *netlink.Route) { r.Protocol = unix.RTPROT_KERNEL }), false, manifest.Route{}},
		{"kernel's, raw", route(func(r *netlink.Route) { r.Protocol = unix.RTPROT_KERNEL }), true,
			manifest.Route{Dst: "10.50.0.0/16", Dev: "eth0"}},
	} {
		got, ok := routeOf(tc.r, names, kept, tc.raw)
		if ok != (tc.want.Dst != "") || ok && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, got, ok, tc.want)
		}
	}
}

func TestRuleOf(t *testing.T) {
	rule := func(f func(*netlink.Rule)) netlink.Rule {
		r := *netlink.NewRule()
		r.Priority, r.Table = 100, 100
		if f != nil {
			f(&r)
		}
		return r
	}
	for _, tc := range []struct {
		name string
		r    netlink.Rule
		fam  int
		raw  bool
		want manifest.Rule // Family "": left out
	}{
		{"plain", rule(nil), netlink.FAMILY_V4, false, manifest.Rule{Priority: 100, Family: "inet", Table: 100}},
		{"every field", rule(func(r *netlink.Rule) {
			r.Src = &net.IPNet{IP: net.ParseIP("fd00::7"), Mask: net.CIDRMask(16, 128)}
			r.Dst = &net.IPNet{IP: net.ParseIP("fd01::"), Mask: net.CIDRMask(32, 128)}
			r.IifName, r.OifName, r.Mark, r.Type = "br0", "eth0", 0x10, unix.FR_ACT_TO_TBL
		}), netlink.FAMILY_V6, false, manifest.Rule{Priority: 100, Family: "inet6", Src: "fd00::/16", Dst: "fd01::/32", Table: 100, IIF: "br0", OIF: "eth0", Mark: 0x10}},
		{"goto", rule(func(r *netlink.Rule) { r.Goto = 200 }), netlink.FAMILY_V4, true, manifest.Rule{}},
		{"not", rule(func(r *netlink.Rule) { r.Invert = true }), netlink.FAMILY_V4, true, manifest.Rule{}},
		{"blackhole", rule(func(r *netlink.Rule) { r.Type = unix.FR_ACT_BLACKHOLE }), netlink.FAMILY_V4, true, manifest.Rule{}},
		{"no priority", rule(func(r *netlink.Rule) { r.Priority = -1 }), netlink.FAMILY_V4, true, manifest.Rule{}},
		{"default", rule(func(r *netlink.Rule) { r.Priority, r.Table = 32766, unix.RT_TABLE_MAIN }), netlink.FAMILY_V4, false, manifest.Rule{}},
		{"default, raw", rule(func(r *netlink.Rule) { r.Priority, r.Table = 32766, unix.RT_TABLE_MAIN }), netlink.FAMILY_V4, true,
			manifest.Rule{Priority: 32766, Family: "inet", Table: unix.RT_TABLE_MAIN}},
	} {
		got, ok := ruleOf(tc.r, tc.fam, tc.raw)
		if ok != (tc.want.Family != "") || ok && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, got, ok, tc.want)
		}
	}
}

func TestScopeName(t *testing.T) {
	for s, want := range map[netlink.Scope]string{
		netlink.SCOPE_UNIVERSE: "", netlink.SCOPE_LINK: "link", netlink.SCOPE_HOST: "host", netlink.SCOPE_SITE: "site",
	} {
		if got, ok := scopeName(s); !ok || got != want {
			t.Errorf("scopeName(%v) = %q, %v; want %q", s, got, ok, want)
		}
		// Plan gives the word back as the same scope.
		if back, ok := addrScopes[want]; !ok || back != s {
			t.Errorf("addrScopes[%q] = %v, %v; want %v", want, back, ok, s)
		}
	}
	if got, ok := scopeName(netlink.SCOPE_NOWHERE); ok {
		t.Errorf("scopeName(nowhere) = %q, true", got)
	}
}
