package manifest

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// networkExample uses every field of the network tables.
func networkExample() Network {
	return Network{
		Links: []Link{
			{Name: "lo", Kind: "loopback", Up: true},
			{Name: "eth0", Kind: "device", MAC: "52:54:00:12:34:56", MTU: 9000, Up: true, Master: "bond0"},
			{Name: "bond0", Kind: "bond", BondMode: "active-backup", MTU: 9000, Up: true,
				Addresses: []Address{{CIDR: "10.1.0.2/24"}, {CIDR: "fd00::2/64"}}},
			{Name: "br0", Kind: "bridge", MAC: "02:00:00:00:00:01", Up: true,
				Addresses: []Address{{CIDR: "10.2.0.1/24", Scope: "global"}, {CIDR: "fe80::1/64", Scope: "link"}}},
			{Name: "veth0", Kind: "veth", Peer: "veth1", Master: "br0", Up: true},
			{Name: "veth1", Kind: "veth", Peer: "veth0", Up: true, Addresses: []Address{{CIDR: "10.2.0.2/24"}}},
			{Name: "bond0.100", Kind: "vlan", Parent: "bond0", VLANID: 100, Up: true, Addresses: []Address{{CIDR: "192.168.100.5/24", Scope: "site"}}},
			{Name: "dummy0", Kind: "dummy", Addresses: []Address{{CIDR: "10.9.9.9/32", Scope: "host"}}},
		},
		Routes: []Route{
			{Dst: "default", Gateway: "10.1.0.1", Dev: "bond0"},
			{Dst: "default6", Gateway: "fd00::1", Metric: 1024},
			{Dst: "10.50.0.0/16", Gateway: "10.2.0.254", Dev: "br0", Metric: 100, Src: "10.2.0.1"},
			{Dst: "10.60.0.0/24", Dev: "br0", Scope: "link"},
		},
		Rules: []Rule{
			{Priority: 100, Family: "inet", Src: "10.2.0.0/24", Table: 100},
			{Priority: 200, Family: "inet6", Dst: "fd00:1::/48", Table: 200, IIF: "br0", OIF: "bond0", Mark: 0x10},
		},
	}
}

func TestNetworkRoundTrip(t *testing.T) {
	m := fullManifest()
	m.Network = networkExample()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := Parse(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if !reflect.DeepEqual(m, m2) {
		t.Fatalf("round trip changed the manifest:\n%+v\n%+v\n%s", m.Network, m2.Network, b)
	}
	b2, err := m2.Marshal()
	if err != nil || string(b) != string(b2) {
		t.Fatalf("second Marshal differs (%v)", err)
	}
	for _, s := range []string{"[network]\n", "[[network.link]]\n", "[[network.link.address]]\n", "[[network.route]]\n", "[[network.rule]]\n", "fwmark = 16\n"} {
		if !strings.Contains(string(b), s) {
			t.Errorf("no %q in:\n%s", s, b)
		}
	}

	// No network: no [network] table.
	m.Network = Network{}
	if b, err = m.Marshal(); err != nil || strings.Contains(string(b), "network") {
		t.Errorf("an empty network is written (%v):\n%s", err, b)
	}
}

const netConfigHead = "version = 1\n"

func TestNetworkConfig(t *testing.T) {
	in := netConfigHead + `
[network]
carry = "listed"
interfaces = ["eth0", "br0"]

[[network.link]]
name = "eth0"
kind = "device"
mac = "52:54:00:AB:CD:EF"
up = true
address = [{cidr = "10.1.0.2/24"}]

[[network.route]]
dst = "default"
gateway = "10.1.0.1"
`
	c, err := ParseConfig([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Network{
		Carry:      "listed",
		Interfaces: []string{"eth0", "br0"},
		Links:      []Link{{Name: "eth0", Kind: "device", MAC: "52:54:00:AB:CD:EF", Up: true, Addresses: []Address{{CIDR: "10.1.0.2/24"}}}},
		Routes:     []Route{{Dst: "default", Gateway: "10.1.0.1"}},
	}
	if !reflect.DeepEqual(c.Network, want) {
		t.Fatalf("got %+v\nwant %+v", c.Network, want)
	}
	for _, carry := range []string{"all", "none"} {
		if _, err := ParseConfig([]byte(netConfigHead + "[network]\ncarry = \"" + carry + "\"\n")); err != nil {
			t.Errorf("carry %s: %v", carry, err)
		}
	}
	// A manifest does not say what to carry: it has what was carried.
	_, err = Parse([]byte(netConfigHead + "generation = 1\nkernel_release = \"x\"\n\n[network]\ncarry = \"all\"\ninterfaces = [\"eth0\"]\n"))
	assertProblem(t, "", err, `manifest.toml:6: network: a manifest cannot set carry; it is for the config only`)
	assertProblem(t, "", err, `manifest.toml:7: network: a manifest cannot set interfaces; it is for the config only`)
}

func TestNetworkReject(t *testing.T) {
	link := func(fields string) string { return "\n[[network.link]]\n" + fields }
	dev := link("name = \"eth0\"\nkind = \"device\"\nmac = \"52:54:00:00:00:01\"\n")
	br := link("name = \"br0\"\nkind = \"bridge\"\n")
	for _, tc := range []struct {
		name, in, want string
	}{
		{"carry", "[network]\ncarry = \"some\"\n", `config.toml:3: network: carry "some": it must be "all", "listed", "none"`},
		{"interfaces without listed", "[network]\ninterfaces = [\"eth0\"]\n", `config.toml:3: network: interfaces is only for carry "listed"`},
		{"listed without interfaces", "[network]\ncarry = \"listed\"\n", `config.toml:3: network: carry "listed" needs interfaces`},
		{"interface twice", "[network]\ncarry = \"listed\"\ninterfaces = [\"a\", \"a\"]\n", `config.toml:4: network: interface "a" is listed twice`},
		{"interface name", "[network]\ncarry = \"listed\"\ninterfaces = [\"a/b\"]\n", `config.toml:4: network: interface name "a/b" is not valid`},
		{"name missing", link("kind = \"dummy\"\n"), `config.toml:3: network.link[0]: link name is missing`},
		{"name too long", link("name = \"abcdefghijklmnop\"\nkind = \"dummy\"\n"), `config.toml:4: network.link[0]: link name "abcdefghijklmnop" is not valid`},
		{"name space", link("name = \"a b\"\nkind = \"dummy\"\n"), `config.toml:4: network.link[0]: link name "a b" is not valid`},
		{"name twice", br + link("name = \"br0\"\nkind = \"dummy\"\n"), `config.toml:8: network: link name "br0" is used twice (line 4)`},
		{"kind", link("name = \"x\"\nkind = \"tun\"\n"), `config.toml:5: link "x": kind "tun": it must be one of "loopback", "device"`},
		{"kind missing", link("name = \"x\"\n"), `config.toml:3: link "x": kind is missing`},
		{"device without mac", link("name = \"eth0\"\nkind = \"device\"\n"), `config.toml:3: link "eth0": a device needs its mac`},
		{"bad mac", link("name = \"d\"\nkind = \"dummy\"\nmac = \"zz:00\"\n"), `config.toml:6: link "d": mac "zz:00" is not a MAC address`},
		{"long mac", link("name = \"d\"\nkind = \"dummy\"\nmac = \"00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01\"\n"), `config.toml:6: link "d": mac "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01" is not a 6-byte Ethernet address`},
		{"mtu", link("name = \"d\"\nkind = \"dummy\"\nmtu = 20\n"), `config.toml:6: link "d": mtu 20 is out of range`},
		{"vlan without parent", link("name = \"v\"\nkind = \"vlan\"\nvlan_id = 5\n"), `config.toml:5: link "v": a vlan needs parent`},
		{"vlan unknown parent", link("name = \"v\"\nkind = \"vlan\"\nparent = \"eth9\"\nvlan_id = 5\n"), `config.toml:6: link "v": parent "eth9" is not a listed link`},
		{"vlan id", dev + link("name = \"v\"\nkind = \"vlan\"\nparent = \"eth0\"\nvlan_id = 4095\n"), `config.toml:12: link "v": vlan_id 4095 is out of range: 1 to 4094`},
		{"vlan id missing", dev + link("name = \"v\"\nkind = \"vlan\"\nparent = \"eth0\"\n"), `config.toml:10: link "v": a vlan needs vlan_id (1 to 4094)`},
		{"vlan_id on a dummy", link("name = \"d\"\nkind = \"dummy\"\nvlan_id = 3\n"), `config.toml:6: link "d": vlan_id is only for kind "vlan"`},
		{"veth without peer", link("name = \"v0\"\nkind = \"veth\"\n"), `config.toml:5: link "v0": a veth needs peer`},
		{"veth peer not back", link("name = \"v0\"\nkind = \"veth\"\npeer = \"v1\"\n") + link("name = \"v1\"\nkind = \"veth\"\npeer = \"v2\"\n"),
			`config.toml:6: link "v0": peer "v1" is listed but is not a veth whose peer is "v0" (line 9)`},
		{"master unknown", link("name = \"d\"\nkind = \"dummy\"\nmaster = \"br9\"\n"), `config.toml:6: link "d": master "br9" is not a listed link`},
		{"master not a bridge", dev + link("name = \"d\"\nkind = \"dummy\"\nmaster = \"eth0\"\n"), `config.toml:11: link "d": master "eth0" is a device: it must be a bridge or a bond (line 4)`},
		{"bond mode", link("name = \"b\"\nkind = \"bond\"\nbond_mode = \"fast\"\n"), `config.toml:6: link "b": bond_mode "fast": it must be one of "balance-rr"`},
		{"cidr", br + "address = [{cidr = \"10.0.0.300/24\"}]\n", `config.toml:6: link "br0": address "10.0.0.300/24" is not an address with a prefix length`},
		{"cidr without length", br + "[[network.link.address]]\ncidr = \"10.0.0.1\"\n", `config.toml:7: link "br0": address "10.0.0.1" is not an address with a prefix length`},
		{"address twice", br + "address = [{cidr = \"10.0.0.1/24\"}, {cidr = \"10.0.0.1/16\"}]\n", `config.toml:6: link "br0": address 10.0.0.1 is listed twice`},
		{"address scope", br + "[[network.link.address]]\ncidr = \"10.0.0.1/24\"\nscope = \"world\"\n", `config.toml:8: link "br0": address scope "world": it must be one of "global", "link", "host", "site"`},
		{"route dst", br + "\n[[network.route]]\ndst = \"10.0.0.0/33\"\ndev = \"br0\"\n", `config.toml:8: route "10.0.0.0/33": dst is not a CIDR`},
		{"route dst host bits", br + "\n[[network.route]]\ndst = \"10.0.0.1/24\"\ndev = \"br0\"\n", `config.toml:8: route "10.0.0.1/24": dst is not a CIDR, "default" or "default6": "10.0.0.1/24" has host bits set (the network is 10.0.0.0/24)`},
		{"route dst missing", br + "\n[[network.route]]\ndev = \"br0\"\n", `config.toml:7: network.route[0]: dst is missing`},
		{"route gateway", "\n[[network.route]]\ndst = \"default\"\ngateway = \"10.0.0\"\n", `config.toml:5: route "default": gateway "10.0.0" is not an IP address`},
		{"route gateway family", "\n[[network.route]]\ndst = \"default6\"\ngateway = \"10.0.0.1\"\n", `config.toml:5: route "default6": gateway 10.0.0.1 is inet but dst is inet6`},
		{"route src", "\n[[network.route]]\ndst = \"default\"\ngateway = \"10.0.0.1\"\nsrc = \"fd00::1\"\n", `config.toml:6: route "default": src fd00::1 is inet6 but dst is inet`},
		{"route dev", "\n[[network.route]]\ndst = \"default\"\ndev = \"eth7\"\n", `config.toml:5: route "default": dev "eth7" is not a listed link`},
		{"route without gateway or dev", "\n[[network.route]]\ndst = \"default\"\n", `config.toml:4: route "default": a route needs gateway or dev`},
		{"route scope", "\n[[network.route]]\ndst = \"default\"\ngateway = \"10.0.0.1\"\nscope = \"site\"\n", `config.toml:6: route "default": route scope "site": it must be one of "global", "link", "host"`},
		{"route metric", "\n[[network.route]]\ndst = \"default\"\ngateway = \"10.0.0.1\"\nmetric = -1\n", `config.toml:6: route "default": metric -1 is out of range`},
		{"route twice", "\n[[network.route]]\ndst = \"default\"\ngateway = \"10.0.0.1\"\n\n[[network.route]]\ndst = \"0.0.0.0/0\"\ngateway = \"10.0.0.2\"\n",
			`config.toml:8: route "0.0.0.0/0": a route to 0.0.0.0/0 with metric 0 in table 254 is listed twice (line 4)`},
		{"route twice in a table", "\n[[network.route]]\ndst = \"default\"\ngateway = \"10.0.0.1\"\ntable = 254\n\n[[network.route]]\ndst = \"0.0.0.0/0\"\ngateway = \"10.0.0.2\"\n",
			`config.toml:9: route "0.0.0.0/0": a route to 0.0.0.0/0 with metric 0 in table 254 is listed twice (line 4)`},
		{"route table local", "\n[[network.route]]\ndst = \"default\"\ngateway = \"10.0.0.1\"\ntable = 255\n", `config.toml:6: route "default": table 255: it must be 1 to 4294967295 and not 255`},
		{"route table negative", "\n[[network.route]]\ndst = \"default\"\ngateway = \"10.0.0.1\"\ntable = -3\n", `config.toml:6: route "default": table -3: it must be`},
		{"rule family", "\n[[network.rule]]\npriority = 10\nfamily = \"ipx\"\ntable = 5\n", `config.toml:5: rule 10: family "ipx": it must be "inet" or "inet6"`},
		{"rule family missing", "\n[[network.rule]]\npriority = 10\ntable = 5\n", `config.toml:3: rule 10: family is missing`},
		{"rule table", "\n[[network.rule]]\npriority = 10\nfamily = \"inet\"\ntable = 0\n", `config.toml:6: rule 10: table 0 is out of range`},
		{"rule table missing", "\n[[network.rule]]\npriority = 10\nfamily = \"inet\"\n", `config.toml:4: rule 10: table is missing`},
		{"rule src family", "\n[[network.rule]]\npriority = 10\nfamily = \"inet6\"\nsrc = \"10.0.0.0/8\"\ntable = 5\n", `config.toml:6: rule 10: src 10.0.0.0/8 is not family inet6`},
		{"rule dst", "\n[[network.rule]]\npriority = 10\nfamily = \"inet\"\ndst = \"10.0.0.0\"\ntable = 5\n", `config.toml:6: rule 10: dst "10.0.0.0" is not a CIDR`},
		{"rule iif", "\n[[network.rule]]\npriority = 10\nfamily = \"inet\"\ntable = 5\niif = \"a b\"\n", `config.toml:7: rule 10: iif "a b" is not a valid link name`},
		{"fwmark negative", "\n[[network.rule]]\npriority = 10\nfamily = \"inet\"\ntable = 5\nfwmark = -1\n", `config.toml:7: network.rule[0].fwmark: -1 is out of range`},
		{"unknown key", link("name = \"d\"\nkind = \"dummy\"\ncolour = \"red\"\n"), `config.toml:6: network.link[0].colour: unknown key`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := netConfigHead + tc.in
			if !strings.HasPrefix(tc.in, "[network]") && !strings.HasPrefix(tc.in, "\n") {
				in = netConfigHead + "\n" + tc.in
			}
			_, err := ParseConfig([]byte(in))
			assertProblem(t, in, err, tc.want)
		})
	}
}

// A value built in Go is named by path.
func TestNetworkValidatePaths(t *testing.T) {
	m := fullManifest()
	m.Network = networkExample()
	m.Network.Links[4].Master = "veth1"
	m.Network.Routes[2].Dev = "nope"
	err := m.Validate()
	for _, want := range []string{
		`network.link[4].master: link "veth0": master "veth1" is a veth: it must be a bridge or a bond (network.link[5].name)`,
		`network.route[2].dev: route "10.50.0.0/16": dev "nope" is not a listed link`,
	} {
		assertProblem(t, "", err, want)
	}
	if err != nil && strings.Count(err.Error(), "\n") != 1 {
		t.Errorf("more problems than expected:\n%v", err)
	}
}

func TestValidLinkName(t *testing.T) {
	for name, ok := range map[string]bool{
		"eth0": true, "br-lan.10": true, "abcdefghijklmno": true, "abcdefghijklmnop": false,
		"": false, ".": false, "..": false, "a/b": false, "a b": false, "a:1": false, "a\tb": false, "é": false,
	} {
		if validLinkName(name) != ok {
			t.Errorf("validLinkName(%q) = %v", name, !ok)
		}
	}
}

// The [network] example of docs/manifest.md is a valid config, and its
// network is what prepare would write into a manifest.
func TestNetworkDocExample(t *testing.T) {
	md, err := os.ReadFile("../docs/manifest.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range fences(string(md)) {
		if f.lang != "toml network" {
			continue
		}
		n++
		c, err := ParseConfig([]byte(f.body))
		if err != nil {
			t.Fatalf("the network example: %v", err)
		}
		m := c.NewManifest()
		m.Network = c.Network
		m.Network.Carry, m.Network.Interfaces = "", nil
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		m2, err := Parse(b)
		if err != nil || !reflect.DeepEqual(m2.Network, m.Network) {
			t.Fatalf("round trip (%v):\n%s", err, b)
		}
	}
	if n != 1 {
		t.Fatalf("%d network examples in the docs, want 1", n)
	}
}

// Each step of the network check, on the cases TestNetworkReject does not
// reach: the whole error is pinned, so a step that says more, or less,
// than it should fails.
func TestNetworkSteps(t *testing.T) {
	lo := Link{Name: "lo", Kind: "loopback"}
	br := Link{Name: "br0", Kind: "bridge"}
	for _, tc := range []struct {
		name string
		n    Network
		want string
	}{
		{"loopback with mac", Network{Links: []Link{{Name: "lo", Kind: "loopback", MAC: "02:00:00:00:00:01"}}},
			`network.link[0].mac: link "lo": a loopback link has no mac`},
		{"master itself", Network{Links: []Link{{Name: "br0", Kind: "bridge", Master: "br0"}}},
			`network.link[0].master: link "br0": master is the link itself`},
		{"loopback with master", Network{Links: []Link{br, {Name: "lo", Kind: "loopback", Master: "br0"}}},
			`network.link[1].master: link "lo": a loopback link cannot have a master`},
		{"veth peer name", Network{Links: []Link{{Name: "v0", Kind: "veth", Peer: "a/b"}}},
			`network.link[0].peer: link "v0": peer "a/b" is not a valid link name`},
		{"veth peer itself", Network{Links: []Link{{Name: "v0", Kind: "veth", Peer: "v0"}}},
			`network.link[0].peer: link "v0": peer is the link itself`},
		{"peer on a bridge", Network{Links: []Link{{Name: "br0", Kind: "bridge", Peer: "v1"}}},
			`network.link[0].peer: link "br0": peer is only for kind "veth"`},
		{"vlan parent itself", Network{Links: []Link{{Name: "v", Kind: "vlan", Parent: "v", VLANID: 5}}},
			`network.link[0].parent: link "v": parent is the link itself`},
		{"vlan on the loopback", Network{Links: []Link{lo, {Name: "v", Kind: "vlan", Parent: "lo", VLANID: 5}}},
			`network.link[1].parent: link "v": parent "lo" is the loopback link (network.link[0].name)`},
		{"cidr missing", Network{Links: []Link{{Name: "br0", Kind: "bridge", Addresses: []Address{{Scope: "link"}}}}},
			`network.link[0].address[0].cidr: link "br0": address[0]: cidr is missing`},
		// A dst that is not text says nothing more of its route: not even
		// that it lacks gateway and dev.
		{"route dst not UTF-8", Network{Routes: []Route{{Dst: "\xff", Scope: "nowhere"}}},
			`network.route[0].dst: network.route[0]: dst is not valid UTF-8`},
		{"route gateway zone", Network{Routes: []Route{{Dst: "default6", Gateway: "fe80::1%eth0"}}},
			`network.route[0].gateway: route "default6": gateway "fe80::1%eth0": a zone is not allowed`},
		// A priority out of range is no name for the rule: it is named by
		// path from then on.
		{"rule priority", Network{Rules: []Rule{{Priority: -1, Family: "ipx", Table: 5}}},
			`network.rule[0].priority: network.rule[0]: priority -1 is out of range: 0 to 4294967295` + "\n" +
				`network.rule[0].family: network.rule[0]: family "ipx": it must be "inet" or "inet6"`},
		{"rule src host bits", Network{Rules: []Rule{{Priority: 10, Family: "inet", Src: "10.0.0.1/8", Table: 5}}},
			`network.rule[0].src: rule 10: src "10.0.0.1/8" has host bits set (the network is 10.0.0.0/8)`},
		{"rule oif", Network{Rules: []Rule{{Priority: 10, Family: "inet", Table: 5, OIF: "a:b"}}},
			`network.rule[0].oif: rule 10: oif "a:b" is not a valid link name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := (&Config{Version: Version, Network: tc.n}).Validate()
			if err == nil || err.Error() != tc.want {
				t.Errorf("got\n%v\nwant\n%s", err, tc.want)
			}
		})
	}
}
