package netconf

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/u-root/uio/ulog/ulogtest"

	"github.com/vishvananda/netlink"

	"github.com/luoinit/luoinit/manifest"
)

func lo(up bool) manifest.Link { return manifest.Link{Name: "lo", Kind: "loopback", Up: up} }

func addrs(cidrs ...string) []manifest.Address {
	var out []manifest.Address
	for _, c := range cidrs {
		out = append(out, manifest.Address{CIDR: c})
	}
	return out
}

// wantNet is a network with one of everything.
func wantNet() manifest.Network {
	return manifest.Network{
		Links: []manifest.Link{
			lo(true),
			// Ports and vlans listed before what they need: Plan orders.
			{Name: "v0", Kind: "veth", Peer: "v1", Master: "br0", MTU: 1500, Up: true},
			{Name: "d0.10", Kind: "vlan", Parent: "d0", VLANID: 10, Up: true, Addresses: addrs("10.10.0.1/24")},
			{Name: "d0", Kind: "dummy", MTU: 1500, Up: true, Addresses: addrs("10.0.0.1/24", "10.0.1.1/24", "fd00::1/64")},
			{Name: "v1", Kind: "veth", Peer: "v0", MAC: "02:00:00:00:00:11", Up: true, Addresses: addrs("10.2.0.2/24")},
			{Name: "br0", Kind: "bridge", MTU: 1500, Up: true, Addresses: addrs("10.2.0.1/24")},
			{Name: "eth0", Kind: "device", MAC: "52:54:00:00:00:01", Master: "bond0", Up: true},
			{Name: "bond0", Kind: "bond", BondMode: "active-backup", Up: true, Addresses: addrs("10.5.0.1/24")},
		},
		Routes: []manifest.Route{
			{Dst: "default", Gateway: "10.0.0.254", Dev: "d0"},
			{Dst: "10.50.0.0/16", Gateway: "10.2.0.254"},
			{Dst: "10.60.0.0/24", Dev: "br0", Scope: "link"},
		},
		Rules: []manifest.Rule{{Priority: 100, Family: "inet", Src: "10.2.0.0/24", Table: 100}},
	}
}

func opIndex(t *testing.T, ops []Op, action, link, detail string) int {
	t.Helper()
	for i, o := range ops {
		if o.Action == action && o.Link == link && (detail == "" || o.Detail == detail) {
			return i
		}
	}
	t.Fatalf("no op %s %s %s in:\n%s", action, link, detail, opsText(ops))
	return -1
}

func opsText(ops []Op) string {
	var b strings.Builder
	for _, o := range ops {
		b.WriteString(o.String() + "\n")
	}
	return b.String()
}

func before(t *testing.T, ops []Op, a, b [3]string) {
	t.Helper()
	i, j := opIndex(t, ops, a[0], a[1], a[2]), opIndex(t, ops, b[0], b[1], b[2])
	if i >= j {
		t.Errorf("%v should come before %v:\n%s", a, b, opsText(ops))
	}
}

func op(action, link string) [3]string          { return [3]string{action, link, ""} }
func opd(action, link, detail string) [3]string { return [3]string{action, link, detail} }

func TestPlanOrder(t *testing.T) {
	cur := manifest.Network{Links: []manifest.Link{
		lo(false),
		{Name: "eth0", Kind: "device", MAC: "52:54:00:00:00:01", MTU: 1500, Up: true},
	}}
	ops := Plan(cur, wantNet())
	if err := (&manifest.Config{Version: 1, Network: wantNet()}).Validate(); err != nil {
		t.Fatal(err)
	}

	// Creates: masters and dummies, then one veth create for the pair,
	// then vlans.
	before(t, ops, op("create", "br0"), op("create", "v0"))
	before(t, ops, op("create", "bond0"), op("create", "v0"))
	before(t, ops, op("create", "d0"), op("create", "d0.10"))
	before(t, ops, op("create", "v0"), op("create", "d0.10"))
	creates := 0
	for _, o := range ops {
		if o.Action == "create" {
			creates++
			if o.Link == "v1" {
				t.Errorf("the veth pair is created twice:\n%s", opsText(ops))
			}
		}
	}
	if creates != 5 {
		t.Errorf("%d creates, want 5 (br0, bond0, d0, v0+v1, d0.10):\n%s", creates, opsText(ops))
	}
	if o := ops[opIndex(t, ops, "create", "v0", "")]; o.Detail != "veth peer v1" {
		t.Errorf("veth create: %s", o)
	}

	// Ports join their masters after the masters exist, and come up after.
	before(t, ops, op("create", "br0"), op("set-master", "v0"))
	before(t, ops, op("create", "bond0"), op("set-master", "eth0"))
	before(t, ops, op("set-master", "v0"), op("set-mtu", "v0"))
	before(t, ops, op("set-mtu", "d0"), op("set-mac", "v1"))
	before(t, ops, op("set-mac", "v1"), op("add-address", "d0"))
	before(t, ops, op("set-up", "br0"), op("set-up", "v0"))
	before(t, ops, op("set-up", "bond0"), op("set-up", "eth0"))
	before(t, ops, op("set-up", "d0"), op("set-up", "d0.10"))
	before(t, ops, op("set-master", "eth0"), op("set-up", "eth0")) // enslaved down, then up
	if ops[opIndex(t, ops, "set-up", "lo", "")].Action != "set-up" {
		t.Fatal("unreachable")
	}
	for _, o := range ops {
		if o.Action == "add-address" {
			before(t, ops, opd("add-address", o.Link, o.Detail), op("set-up", "lo"))
		}
		if o.Action == "set-up" {
			before(t, ops, opd("set-up", o.Link, ""), opd("add-route", "d0", "default via 10.0.0.254 dev d0"))
		}
	}
	before(t, ops, opd("add-address", "d0", "10.0.0.1/24"), opd("add-route", "d0", "default via 10.0.0.254 dev d0"))
	before(t, ops, opd("add-route", "br0", "10.60.0.0/24 dev br0 scope link"), opd("add-rule", "", "100 inet from 10.2.0.0/24 table 100"))
	opIndex(t, ops, "add-route", "", "10.50.0.0/16 via 10.2.0.254")

	// eth0 is there already: matched, not created; its MTU is left as it is.
	for _, o := range ops {
		if o.Link == "eth0" && (o.Action == "create" || o.Action == "rename" || o.Action == "set-mtu") {
			t.Errorf("unexpected %s", o)
		}
	}
	if n := len(ops); n != 5+2+3+1+7+8+3+1 {
		t.Errorf("%d ops:\n%s", n, opsText(ops))
	}
}

func TestPlanRenameByMAC(t *testing.T) {
	cur := manifest.Network{Links: []manifest.Link{
		lo(true),
		{Name: "ens3", Kind: "device", MAC: "52:54:00:AB:CD:EF", MTU: 1500, Up: true, Addresses: addrs("10.0.0.1/24")},
		{Name: "eth0", Kind: "device", MAC: "52:54:00:00:00:99", MTU: 1500},
	}}
	want := manifest.Network{
		Links: []manifest.Link{
			{Name: "eth0", Kind: "device", MAC: "52:54:00:ab:cd:ef", MTU: 1500, Up: true, Addresses: addrs("10.0.0.1/24", "10.0.0.2/24")},
			{Name: "eth1", Kind: "device", MAC: "52:54:00:00:00:99", MTU: 1500},
		},
		Routes: []manifest.Route{{Dst: "default", Gateway: "10.0.0.254", Dev: "eth0"}},
	}
	got := Plan(cur, want)
	wantOps := []Op{
		{Action: "rename", Link: "eth0", Detail: "from ens3"},
		{Action: "rename", Link: "eth1", Detail: "from eth0"},
		{Action: "add-address", Link: "eth0", Detail: "10.0.0.2/24"},
		{Action: "set-up", Link: "eth0"},
		{Action: "add-route", Link: "eth0", Detail: "default via 10.0.0.254 dev eth0"},
	}
	if !sameOps(got, wantOps) {
		t.Errorf("got:\n%swant:\n%s", opsText(got), opsText(wantOps))
	}

	// Renamed already: nothing to do; the routes of cur name the links as
	// they are called now.
	cur.Links[1].Name, cur.Links[2].Name = "eth0", "eth1"
	cur.Links[1].Addresses = addrs("10.0.0.2/24", "10.0.0.1/24")
	cur.Routes = []manifest.Route{{Dst: "0.0.0.0/0", Gateway: "10.0.0.254", Dev: "eth0"}}
	if ops := Plan(cur, want); len(ops) != 0 {
		t.Errorf("not idempotent:\n%s", opsText(ops))
	}
}

func sameOps(got, want []Op) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].Action != want[i].Action || got[i].Link != want[i].Link || got[i].Detail != want[i].Detail {
			return false
		}
	}
	return true
}

func TestPlanMissingDevice(t *testing.T) {
	cur := manifest.Network{Links: []manifest.Link{lo(true), {Name: "eth0", Kind: "device", MAC: "52:54:00:00:00:01"}}}
	want := manifest.Network{
		Links: []manifest.Link{
			{Name: "eth1", Kind: "device", MAC: "52:54:00:00:00:02", Up: true, Master: "br0", Addresses: addrs("10.0.0.1/24")},
			{Name: "eth1.5", Kind: "vlan", Parent: "eth1", VLANID: 5, Up: true, Addresses: addrs("10.5.0.1/24")},
			{Name: "eth1.5.7", Kind: "vlan", Parent: "eth1.5", VLANID: 7, Up: true},
			{Name: "br0", Kind: "bridge", Up: true},
		},
		Routes: []manifest.Route{
			{Dst: "default", Gateway: "10.0.0.254", Dev: "eth1"},
			{Dst: "10.9.0.0/16", Dev: "br0"},
		},
	}
	got := Plan(cur, want)
	wantOps := []Op{
		{Action: "missing", Link: "eth1", Detail: "no device with mac 52:54:00:00:00:02"},
		{Action: "create", Link: "br0", Detail: "bridge"},
		{Action: "set-up", Link: "br0"},
		{Action: "add-route", Link: "br0", Detail: "10.9.0.0/16 dev br0"},
	}
	if !sameOps(got, wantOps) {
		t.Errorf("got:\n%swant:\n%s", opsText(got), opsText(wantOps))
	}
	// Apply turns it into an error.
	_, errs := run(nil, got[:1], ulogtest.Logger{TB: t})
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "eth1") {
		t.Errorf("errs %v", errs)
	}
}

func TestPlanIdempotent(t *testing.T) {
	want := wantNet()
	if ops := Plan(want, want); len(ops) != 0 {
		t.Errorf("Plan(x, x):\n%s", opsText(ops))
	}
	// What the kernel adds, and what someone else added, is not in the way.
	after := wantNet()
	for i := range after.Links {
		l := &after.Links[i]
		if l.Kind != "loopback" {
			l.Addresses = append([]manifest.Address{{CIDR: "fe80::1234/64", Scope: "link"}}, l.Addresses...)
		}
		if l.MAC == "" && l.Kind != "loopback" {
			l.MAC = fmt.Sprintf("02:42:00:00:00:%02x", i) // made up by the kernel
		}
	}
	after.Links = append(after.Links, manifest.Link{Name: "docker0", Kind: "bridge", Up: true, MTU: 1500, Addresses: addrs("172.17.0.1/16")})
	after.Links[1].Addresses = addrs("192.168.9.9/24")
	after.Routes = append(after.Routes,
		manifest.Route{Dst: "10.0.0.0/24", Dev: "d0", Scope: "link", Src: "10.0.0.1"},
		manifest.Route{Dst: "172.17.0.0/16", Dev: "docker0", Scope: "link"},
	)
	after.Rules = append(after.Rules, manifest.Rule{Priority: 32766, Family: "inet", Table: 254})
	if ops := Plan(after, want); len(ops) != 0 {
		t.Errorf("Plan(after, want):\n%s", opsText(ops))
	}
}

func TestPlanLoopbackAlwaysUp(t *testing.T) {
	cur := manifest.Network{Links: []manifest.Link{lo(false)}}
	for _, want := range []manifest.Network{{}, {Links: []manifest.Link{lo(false)}}, {Links: []manifest.Link{lo(true)}}} {
		got := Plan(cur, want)
		if !sameOps(got, []Op{{Action: "set-up", Link: "lo"}}) {
			t.Errorf("want %+v: got\n%s", want, opsText(got))
		}
	}
	if got := Plan(manifest.Network{Links: []manifest.Link{lo(true)}}, manifest.Network{}); len(got) != 0 {
		t.Errorf("lo up already:\n%s", opsText(got))
	}
}

func TestPlanLeavesExtraAlone(t *testing.T) {
	cur := manifest.Network{
		Links: []manifest.Link{
			lo(true),
			{Name: "d0", Kind: "dummy", MTU: 9000, Up: true, Addresses: addrs("10.0.0.1/24", "10.0.0.9/24")},
			{Name: "x0", Kind: "dummy", Up: true},
		},
		Routes: []manifest.Route{{Dst: "default", Gateway: "10.0.0.1"}},
		Rules:  []manifest.Rule{{Priority: 5, Family: "inet", Table: 5}},
	}
	want := manifest.Network{
		Links:  []manifest.Link{{Name: "d0", Kind: "dummy", Up: true, Addresses: addrs("10.0.0.1/24", "10.0.0.2/24")}},
		Routes: []manifest.Route{{Dst: "default", Gateway: "10.0.0.1", Metric: 10}},
	}
	got := Plan(cur, want)
	wantOps := []Op{
		{Action: "add-address", Link: "d0", Detail: "10.0.0.2/24"},
		{Action: "add-route", Detail: "default via 10.0.0.1 metric 10"},
	}
	if !sameOps(got, wantOps) {
		t.Errorf("got:\n%swant:\n%s", opsText(got), opsText(wantOps))
	}
}

func TestPlanExistingNameOtherKind(t *testing.T) {
	cur := manifest.Network{Links: []manifest.Link{lo(true), {Name: "br0", Kind: "dummy"}}}
	want := manifest.Network{Links: []manifest.Link{
		{Name: "br0", Kind: "bridge", Up: true},
		{Name: "p0", Kind: "dummy", Master: "br0"},
	}}
	got := Plan(cur, want)
	// The create fails (the name is taken); what needs br0 is skipped.
	ops := append([]Op(nil), got...)
	for i := 1; i < len(ops); i++ {
		ops[i].apply = func(*netlink.Handle) error { return nil } // no kernel here
	}
	var log []string
	applied, errs := run(nil, ops, printf(func(f string, a ...any) { log = append(log, fmt.Sprintf(f, a...)) }))
	if got[0].Action != "create" || got[0].Detail != "bridge (name taken by a dummy)" || len(errs) < 1 || !strings.Contains(errs[0].Error(), "br0") {
		t.Fatalf("ops:\n%serrs %v", opsText(got), errs)
	}
	if applied != 1 || !strings.Contains(strings.Join(log, "\n"), "skip set-master p0: bridge br0: link br0 was not made") {
		t.Errorf("applied %d:\n%s", applied, strings.Join(log, "\n"))
	}
}

// run skips what needs a link whose create failed, and goes on.
func TestRunSkipsDependents(t *testing.T) {
	fail := errors.New("EPERM")
	var ran []string
	mk := func(action, link string, err error, needs ...string) Op {
		o := Op{Action: action, Link: link, needs: needs, apply: func(*netlink.Handle) error { ran = append(ran, action+" "+link); return err }}
		if action == "create" {
			o.makes = []string{link}
		}
		return o
	}
	ops := []Op{
		mk("create", "br0", fail),
		mk("create", "d0", nil),
		mk("create", "br0.5", nil, "br0"),
		mk("set-master", "d0", nil, "d0", "br0"),
		mk("set-up", "br0.5", nil, "br0.5"),
		mk("set-up", "d0", nil, "d0"),
		mk("add-route", "d0", fmt.Errorf("add route: %w", fail), "d0"),
		mk("add-rule", "", nil),
	}
	var log []string
	applied, errs := run(nil, ops, printf(func(f string, a ...any) { log = append(log, fmt.Sprintf(f, a...)) }))
	if want := []string{"create br0", "create d0", "set-up d0", "add-route d0", "add-rule "}; !reflect.DeepEqual(ran, want) {
		t.Errorf("ran %q, want %q", ran, want)
	}
	if applied != 3 || len(errs) != 2 || !errors.Is(errs[1], fail) {
		t.Errorf("applied %d, errs %v", applied, errs)
	}
	skips := 0
	for _, l := range log {
		if strings.HasPrefix(l, "network: skip ") {
			skips++
		}
	}
	if skips != 3 {
		t.Errorf("%d skips logged:\n%s", skips, strings.Join(log, "\n"))
	}
}

func TestDump(t *testing.T) {
	a := manifest.Network{
		Links: []manifest.Link{
			{Name: "b", Kind: "dummy", MAC: "02:AA:00:00:00:01", Addresses: []manifest.Address{{CIDR: "fd00:0::1/64"}, {CIDR: "10.0.0.1/24", Scope: "global"}}},
			{Name: "a", Kind: "device", MAC: "52:54:00:00:00:01", MTU: 1500, Up: true},
		},
		Routes: []manifest.Route{{Dst: "0.0.0.0/0", Gateway: "10.0.0.254"}, {Dst: "10.1.0.0/16", Dev: "b", Scope: "link"}},
		Rules:  []manifest.Rule{{Priority: 10, Family: "inet", Table: 10, Mark: 16}},
	}
	b := manifest.Network{
		Rules:  a.Rules,
		Routes: []manifest.Route{{Dst: "10.1.0.0/16", Dev: "b", Scope: "link"}, {Dst: "default", Gateway: "10.0.0.254"}},
		Links: []manifest.Link{
			{Name: "a", Kind: "device", MAC: "52:54:00:00:00:01", MTU: 1500, Up: true},
			{Name: "b", Kind: "dummy", MAC: "02:aa:00:00:00:01", Addresses: []manifest.Address{{CIDR: "10.0.0.1/24"}, {CIDR: "fd00::1/64"}}},
		},
	}
	want := `address b 10.0.0.1/24
address b fd00::1/64
link a device mac 52:54:00:00:00:01 mtu 1500 up
link b dummy mac 02:aa:00:00:00:01
route 10.1.0.0/16 dev b scope link
route default via 10.0.0.254
rule 10 inet fwmark 0x10 table 10
`
	if got := Dump(a); got != want {
		t.Errorf("Dump:\n%s\nwant:\n%s", got, want)
	}
	if Dump(a) != Dump(b) {
		t.Errorf("equivalent networks dump differently:\n%s\n%s", Dump(a), Dump(b))
	}
	if Dump(a) != Dump(a) || Dump(manifest.Network{}) != "" {
		t.Error("Dump is not stable")
	}
	b.Links[1].Addresses[0].Scope = "host"
	if Dump(a) == Dump(b) {
		t.Error("a different scope dumps the same")
	}
}

// match's pairing, on what the Plan tests above do not reach: the state it
// leaves for the later steps.
func TestPlanMatch(t *testing.T) {
	type linkWant struct {
		cur    string // name in cur, "" if none
		master string
		up     bool
	}
	for _, tc := range []struct {
		name      string
		cur, want []manifest.Link
		links     map[string]linkWant // by wanted name
		dead      []string
		ops       string
	}{
		// A device paired by MAC under another name: its old name goes to
		// a dummy, which is created, not refused as taken; the rename
		// leaves the device down.
		{"device renamed frees its name",
			[]manifest.Link{{Name: "eth0", Kind: "device", MAC: "52:54:00:00:00:01", Up: true}},
			[]manifest.Link{{Name: "lan0", Kind: "device", MAC: "52:54:00:00:00:01"}, {Name: "eth0", Kind: "dummy"}},
			map[string]linkWant{"lan0": {cur: "eth0"}, "eth0": {}},
			nil, "rename lan0: from eth0\ncreate eth0: dummy\n"},
		// Same name, other kind: not the same link.
		{"name of another kind",
			[]manifest.Link{{Name: "br0", Kind: "dummy"}},
			[]manifest.Link{{Name: "br0", Kind: "bridge"}},
			map[string]linkWant{"br0": {}},
			nil, "create br0: bridge (name taken by a dummy)\n"},
		// A master that is not wanted keeps its name in cur.
		{"port of a master not wanted",
			[]manifest.Link{{Name: "d0", Kind: "dummy", Master: "docker0", Up: true}, {Name: "docker0", Kind: "bridge"}},
			[]manifest.Link{{Name: "d0", Kind: "dummy", Master: "br0", Up: true}, {Name: "br0", Kind: "bridge"}},
			map[string]linkWant{"d0": {cur: "d0", master: "docker0", up: true}, "br0": {}},
			nil, "create br0: bridge\nset-master d0: bridge br0\n"},
		// A loopback not wanted gets a state of its own, to be brought up.
		{"loopback not wanted",
			[]manifest.Link{{Name: "lo", Kind: "loopback"}},
			[]manifest.Link{{Name: "d0", Kind: "dummy"}},
			map[string]linkWant{"lo": {cur: "lo"}, "d0": {}},
			nil, "create d0: dummy\nset-up lo\n"},
		// Two wanted devices with one MAC: the second is missing, and the
		// vlans on it, at any depth, are dead too.
		{"one MAC twice",
			[]manifest.Link{{Name: "eth0", Kind: "device", MAC: "52:54:00:00:00:01"}},
			[]manifest.Link{
				{Name: "eth0", Kind: "device", MAC: "52:54:00:00:00:01"},
				{Name: "eth1.5.7", Kind: "vlan", Parent: "eth1.5", VLANID: 7},
				{Name: "eth1", Kind: "device", MAC: "52:54:00:00:00:01"},
				{Name: "eth1.5", Kind: "vlan", Parent: "eth1", VLANID: 5},
			},
			map[string]linkWant{"eth0": {cur: "eth0"}, "eth1": {}, "eth1.5": {}, "eth1.5.7": {}},
			[]string{"eth1", "eth1.5", "eth1.5.7"}, "missing eth1: no device with mac 52:54:00:00:00:01\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cur, want := manifest.Network{Links: tc.cur}, manifest.Network{Links: tc.want}
			p := &planner{want: want, state: map[string]*linkState{}, curName: map[string]string{},
				wantOf: map[string]string{}, dead: map[string]bool{}, curKind: map[string]string{}}
			p.match(cur)
			if len(p.state) != len(tc.links) {
				t.Errorf("%d states, want %d", len(p.state), len(tc.links))
			}
			for name, lw := range tc.links {
				s := p.state[name]
				if s == nil {
					t.Errorf("%s: no state", name)
					continue
				}
				cn := ""
				if s.cur != nil {
					cn = s.cur.Name
				}
				if cn != lw.cur || p.curName[name] != lw.cur || s.master != lw.master || s.up != lw.up {
					t.Errorf("%s: cur %q (curName %q), master %q, up %v; want %+v", name, cn, p.curName[name], s.master, s.up, lw)
				}
			}
			var dead []string
			for _, l := range tc.want {
				if p.dead[l.Name] {
					dead = append(dead, l.Name)
				}
			}
			slices.Sort(dead)
			if !slices.Equal(dead, tc.dead) {
				t.Errorf("dead %v, want %v", dead, tc.dead)
			}
			if got := opsText(Plan(cur, want)); got != tc.ops {
				t.Errorf("ops:\n%swant:\n%s", got, tc.ops)
			}
		})
	}
}

// TestPlanVethPeerNotWanted: a veth whose peer names a link that exists
// but is not in the configuration (the loopback) is planned, not a panic
// of PID 1.
func TestPlanVethPeerNotWanted(t *testing.T) {
	cur := manifest.Network{Links: []manifest.Link{lo(true)}}
	want := manifest.Network{Links: []manifest.Link{{Name: "v0", Kind: "veth", Peer: "lo"}}}
	got := Plan(cur, want)
	created := false
	for _, op := range got {
		created = created || op.Action == ActCreate && op.Link == "v0"
	}
	if !created {
		t.Errorf("no create of v0:\n%s", opsText(got))
	}
}

// printf makes a logger of a function, for the tests.
type printf func(format string, args ...any)

func (f printf) Printf(format string, args ...any) { f(format, args...) }

// A bond that exists already in another mode (a built-in bonding driver
// makes bond0 at boot, in balance-rr) gets the wanted mode before any
// port is added; one in the wanted mode gets no op.
func TestPlanBondModeOfExistingBond(t *testing.T) {
	want := manifest.Network{Links: []manifest.Link{
		{Name: "bond0", Kind: "bond", BondMode: "active-backup", Up: true},
		{Name: "p0", Kind: "dummy", Master: "bond0", Up: true},
	}}
	for _, tc := range []struct {
		cur  string // bond0's mode now, "" if there is no bond0
		want string // the set-bond-mode op's detail, "" for none
	}{
		{cur: "balance-rr", want: "balance-rr -> active-backup"},
		{cur: "active-backup"},
		{cur: ""}, // created in the wanted mode
	} {
		cur := manifest.Network{Links: []manifest.Link{lo(true)}}
		if tc.cur != "" {
			cur.Links = append(cur.Links, manifest.Link{Name: "bond0", Kind: "bond", BondMode: tc.cur})
		}
		ops := Plan(cur, want)
		var detail string
		for _, o := range ops {
			if o.Action == ActBondMode {
				detail = o.Detail
			}
		}
		if detail != tc.want {
			t.Errorf("bond0 in mode %q: set-bond-mode %q, want %q:\n%s", tc.cur, detail, tc.want, opsText(ops))
			continue
		}
		if tc.want != "" {
			before(t, ops, [3]string{ActBondMode, "bond0", tc.want}, [3]string{ActSetMaster, "p0", "bond bond0"})
		}
	}
}
