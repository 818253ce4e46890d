package netconf

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/luoinit/luoinit/manifest"
)

// linkState is what Plan knows of a link as the ops so far leave it.
type linkState struct {
	cur     *manifest.Link // nil if it does not exist yet
	created bool           // a create op makes it
	up      bool
	master  string // wanted names
	mtu     int
	mac     string
	addrs   map[netip.Prefix]bool
}

// Plan is pure (no syscalls): the ops that turn cur into want, in order.
//
// Physical links (kind "device") are matched by MAC, not by name: a device
// whose MAC matches but whose name differs is renamed (while down); a
// wanted device that is not there at all gives an op "missing" (which
// Apply reports as an error), and nothing that needs it is done. Missing
// virtual links are created: bridges, bonds and dummies, then veth pairs
// (one create for both ends), then vlans on their parents. Then ports are
// put in their bridge or bond, MTUs and MACs set, addresses added, links
// brought up (masters and parents before their ports and vlans), routes
// added, rules added.
//
// What is already there is not done again, so Plan(x, x) is empty; what
// cur has and want does not is left alone. The loopback link is always
// brought up, whether want mentions it or not.
func Plan(cur, want manifest.Network) []Op {
	p := &planner{
		want:    want,
		state:   map[string]*linkState{},
		curName: map[string]string{},
		wantOf:  map[string]string{},
		dead:    map[string]bool{},
		curKind: map[string]string{},
	}
	p.match(cur)
	p.create()
	p.bondModes()
	p.masters()
	p.mtus()
	p.macs()
	p.addresses()
	p.ups()
	p.routes(cur)
	p.rules(cur)
	return p.ops
}

type planner struct {
	want    manifest.Network
	ops     []Op
	state   map[string]*linkState // by wanted name
	curName map[string]string     // wanted name → name in cur
	wantOf  map[string]string     // name in cur → wanted name
	dead    map[string]bool       // wanted links that are missing: nothing on them is done
	loName  string                // wanted name of the loopback link
	curKind map[string]string     // kind of each link of cur, by its name there
}

func (p *planner) add(op Op) { p.ops = append(p.ops, op) }

// wanted returns the wanted link called name, or nil.
func (p *planner) wanted(name string) *manifest.Link {
	for i := range p.want.Links {
		if p.want.Links[i].Name == name {
			return &p.want.Links[i]
		}
	}
	return nil
}

func newState(l *manifest.Link, wantOf func(string) string) *linkState {
	s := &linkState{cur: l, addrs: map[netip.Prefix]bool{}}
	if l == nil {
		return s
	}
	s.up, s.mtu, s.mac = l.Up, l.MTU, normMAC(l.MAC)
	if l.Master != "" {
		s.master = wantOf(l.Master)
	}
	for _, a := range l.Addresses {
		if pf, err := netip.ParsePrefix(a.CIDR); err == nil {
			s.addrs[pf] = true
		}
	}
	return s
}

// match pairs each wanted link with the link of cur that is it: devices
// by MAC, the loopback by kind, virtual links by name and kind. Devices
// and the loopback go first: they may be renamed, which frees or takes
// names.
func (p *planner) match(cur manifest.Network) {
	c := p.index(cur)
	p.pairFixed(c)
	p.pairVirtual(c)
	p.initStates(c)
	p.devices()
	p.deadVLANs()
}

// curLinks is cur's links, looked up the ways match pairs them.
type curLinks struct {
	byName map[string]*manifest.Link
	byMAC  map[string]*manifest.Link // devices, by normalised MAC
	lo     *manifest.Link            // the first loopback link
	taken  map[string]bool           // names of the links already paired
}

// index indexes cur's links, and notes the kind of each.
func (p *planner) index(cur manifest.Network) *curLinks {
	c := &curLinks{byName: map[string]*manifest.Link{}, byMAC: map[string]*manifest.Link{}, taken: map[string]bool{}}
	for i := range cur.Links {
		l := &cur.Links[i]
		c.byName[l.Name] = l
		p.curKind[l.Name] = l.Kind
		if l.Kind == manifest.KindDevice && l.MAC != "" {
			c.byMAC[normMAC(l.MAC)] = l
		}
		if l.Kind == manifest.KindLoopback && c.lo == nil {
			c.lo = l
		}
	}
	return c
}

// pair records that the wanted link want is the link l of cur.
func (p *planner) pair(c *curLinks, want string, l *manifest.Link) {
	p.curName[want] = l.Name
	p.wantOf[l.Name] = want
	c.taken[l.Name] = true
}

// pairFixed pairs devices by MAC and the loopback by kind, and notes the
// loopback's wanted name.
func (p *planner) pairFixed(c *curLinks) {
	for i := range p.want.Links {
		w := &p.want.Links[i]
		switch w.Kind {
		case manifest.KindDevice:
			if l := c.byMAC[normMAC(w.MAC)]; l != nil && !c.taken[l.Name] {
				p.pair(c, w.Name, l)
			}
		case manifest.KindLoopback:
			if c.lo != nil && !c.taken[c.lo.Name] {
				p.pair(c, w.Name, c.lo)
			}
			if p.loName == "" {
				p.loName = w.Name
			}
		}
	}
}

// pairVirtual pairs virtual links by name and kind.
func (p *planner) pairVirtual(c *curLinks) {
	for i := range p.want.Links {
		w := &p.want.Links[i]
		if w.Kind == manifest.KindDevice || w.Kind == manifest.KindLoopback {
			continue
		}
		if l := c.byName[w.Name]; l != nil && l.Kind == w.Kind && !c.taken[l.Name] {
			p.pair(c, w.Name, l)
		}
	}
}

// initStates gives each wanted link its state, from its pair in cur if it
// has one; a loopback not wanted gets one too, as it is always brought up.
func (p *planner) initStates(c *curLinks) {
	wantOf := func(curName string) string {
		if w, ok := p.wantOf[curName]; ok {
			return w
		}
		return curName
	}
	for i := range p.want.Links {
		w := &p.want.Links[i]
		var l *manifest.Link
		if n, ok := p.curName[w.Name]; ok {
			l = c.byName[n]
		}
		p.state[w.Name] = newState(l, wantOf)
	}
	if p.loName == "" && c.lo != nil {
		// Not wanted, but always brought up.
		lo := c.lo
		p.loName = lo.Name
		p.curName[lo.Name] = lo.Name
		p.wantOf[lo.Name] = lo.Name
		p.state[lo.Name] = newState(lo, wantOf)
	}
}

// devices adds an op "missing" for each wanted device that is not there,
// and a rename for each that is there under another name.
func (p *planner) devices() {
	for i := range p.want.Links {
		w := &p.want.Links[i]
		if w.Kind != manifest.KindDevice {
			continue
		}
		curName, ok := p.curName[w.Name]
		if !ok {
			p.dead[w.Name] = true
			err := fmt.Errorf("device %s (mac %s) is not there: no link has that MAC", w.Name, normMAC(w.MAC))
			p.add(Op{Action: ActMissing, Link: w.Name, Detail: "no device with mac " + normMAC(w.MAC),
				apply: func(*netlink.Handle) error { return err }})
			continue
		}
		if curName != w.Name {
			from, to := curName, w.Name
			p.add(Op{Action: ActRename, Link: to, Detail: "from " + from,
				apply: func(h *netlink.Handle) error { return rename(h, from, to) }})
			p.state[w.Name].up = false
		}
	}
}

// deadVLANs marks the vlans that sit on a missing link, at any depth:
// nothing on them is done either.
func (p *planner) deadVLANs() {
	for changed := true; changed; {
		changed = false
		for i := range p.want.Links {
			w := &p.want.Links[i]
			if !p.dead[w.Name] && w.Kind == manifest.KindVLAN && p.dead[w.Parent] {
				p.dead[w.Name] = true
				changed = true
			}
		}
	}
}

// alive reports whether the wanted link name exists or will: neither
// missing nor unknown.
func (p *planner) alive(name string) bool {
	s, ok := p.state[name]
	return ok && !p.dead[name] && (s.cur != nil || s.created)
}

// create adds the create ops, in dependency order.
func (p *planner) create() {
	for _, kind := range []string{manifest.KindBridge, manifest.KindBond, manifest.KindDummy} {
		for i := range p.want.Links {
			w := &p.want.Links[i]
			if w.Kind == kind && p.state[w.Name].cur == nil {
				p.createLink(w, nil)
			}
		}
	}
	for i := range p.want.Links {
		w := &p.want.Links[i]
		if w.Kind != manifest.KindVeth || p.state[w.Name].cur != nil || p.state[w.Name].created {
			continue
		}
		var makes []string
		if ps, ok := p.state[w.Peer]; ok && p.wanted(w.Peer) != nil && p.wanted(w.Peer).Kind == manifest.KindVeth {
			if ps.cur != nil {
				// One end is there without the other: a veth cannot be
				// half made.
				err := fmt.Errorf("veth %s: its peer %s exists already, so the pair cannot be created", w.Name, w.Peer)
				p.add(Op{Action: ActCreate, Link: w.Name, Detail: "veth peer " + w.Peer + " (peer exists already)",
					apply: func(*netlink.Handle) error { return err }, makes: []string{w.Name}})
				p.state[w.Name].created = true
				continue
			}
			ps.created = true
			makes = []string{w.Peer}
		}
		p.createLink(w, makes)
	}
	// vlans, parents first (a vlan may sit on a vlan).
	done := map[string]bool{}
	for changed := true; changed; {
		changed = false
		for i := range p.want.Links {
			w := &p.want.Links[i]
			if w.Kind != manifest.KindVLAN || done[w.Name] || p.dead[w.Name] || p.state[w.Name].cur != nil {
				continue
			}
			parent := p.wanted(w.Parent)
			if parent != nil && parent.Kind == manifest.KindVLAN && !done[parent.Name] && p.state[parent.Name].cur == nil && !p.dead[parent.Name] {
				continue // its parent is not made yet
			}
			done[w.Name] = true
			changed = true
			if !p.alive(w.Parent) && p.wanted(w.Parent) == nil {
				continue // the parent is not wanted: validation refuses this
			}
			p.createLink(w, nil)
		}
	}
}

func (p *planner) createLink(w *manifest.Link, alsoMakes []string) {
	if p.dead[w.Name] {
		return
	}
	name := w.Name
	makes := append([]string{name}, alsoMakes...)
	if k, taken := p.curKind[name]; taken && p.wantOf[name] == "" {
		err := fmt.Errorf("create %s %s: the name is taken by a %s link", w.Kind, name, k)
		p.add(Op{Action: ActCreate, Link: name, Detail: w.Kind + " (name taken by a " + k + ")", makes: makes,
			apply: func(*netlink.Handle) error { return err }})
		p.state[name].created = true
		return
	}
	op := Op{Action: ActCreate, Link: name, makes: makes}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	var link netlink.Link
	switch w.Kind {
	case manifest.KindDummy:
		op.Detail = "dummy"
		link = &netlink.Dummy{LinkAttrs: attrs}
	case manifest.KindBridge:
		op.Detail = "bridge"
		link = &netlink.Bridge{LinkAttrs: attrs}
	case manifest.KindBond:
		op.Detail = "bond"
		b := netlink.NewLinkBond(attrs)
		if w.BondMode != "" {
			op.Detail += " mode " + w.BondMode
			b.Mode = netlink.StringToBondMode(w.BondMode)
		}
		link = b
	case manifest.KindVeth:
		op.Detail = "veth peer " + w.Peer
		link = &netlink.Veth{LinkAttrs: attrs, PeerName: w.Peer}
	case manifest.KindVLAN:
		op.Detail = fmt.Sprintf("vlan %d on %s", w.VLANID, w.Parent)
		op.needs = []string{w.Parent}
		parent, id := w.Parent, w.VLANID
		p.add(Op{Action: op.Action, Link: name, Detail: op.Detail, needs: op.needs, makes: makes,
			apply: func(h *netlink.Handle) error {
				pl, err := h.LinkByName(parent)
				if err != nil {
					return fmt.Errorf("create vlan %s: parent %s: %w", name, parent, err)
				}
				a := netlink.NewLinkAttrs()
				a.Name = name
				a.ParentIndex = pl.Attrs().Index
				if err := h.LinkAdd(&netlink.Vlan{LinkAttrs: a, VlanId: id}); err != nil {
					return fmt.Errorf("create vlan %s on %s: LinkAdd: %w", name, parent, err)
				}
				return nil
			}})
		p.state[name].created = true
		return
	default:
		return // devices and the loopback are never created
	}
	kind := w.Kind
	op.apply = func(h *netlink.Handle) error {
		if err := h.LinkAdd(link); err != nil {
			return fmt.Errorf("create %s %s: LinkAdd: %w", kind, name, err)
		}
		return nil
	}
	p.add(op)
	p.state[name].created = true
}

// bondModes sets the mode of each wanted bond that exists already in
// another mode: a built-in bonding driver makes bond0 at boot, in
// balance-rr. The kernel changes a bond's mode only while it is down and
// has no ports, so this comes before any port is added.
func (p *planner) bondModes() {
	for i := range p.want.Links {
		w := &p.want.Links[i]
		s := p.state[w.Name]
		if w.Kind != manifest.KindBond || w.BondMode == "" || s.created || s.cur == nil || s.cur.BondMode == w.BondMode {
			continue
		}
		name, mode := w.Name, w.BondMode
		p.add(Op{Action: ActBondMode, Link: name, Detail: s.cur.BondMode + " -> " + mode, needs: []string{name},
			apply: func(h *netlink.Handle) error {
				l, err := h.LinkByName(name)
				if err != nil {
					return fmt.Errorf("set the bond mode of %s: %w", name, err)
				}
				if err := h.LinkSetDown(l); err != nil {
					return fmt.Errorf("set the bond mode of %s: LinkSetDown: %w", name, err)
				}
				b := netlink.NewLinkBond(netlink.LinkAttrs{Name: name, Index: l.Attrs().Index})
				b.Mode = netlink.StringToBondMode(mode)
				if err := h.LinkModify(b); err != nil {
					return fmt.Errorf("set the bond mode of %s to %s: LinkModify: %w", name, mode, err)
				}
				return nil
			}})
		s.up = false
	}
}

func (p *planner) masters() {
	for i := range p.want.Links {
		w := &p.want.Links[i]
		s := p.state[w.Name]
		if w.Master == "" || !p.alive(w.Name) || !p.alive(w.Master) || s.master == w.Master {
			continue
		}
		name, master := w.Name, w.Master
		bond := p.wanted(master).Kind == manifest.KindBond
		detail := "bridge " + master
		if bond {
			detail = "bond " + master
			s.up = false // a bond port is enslaved down
		}
		p.add(Op{Action: ActSetMaster, Link: name, Detail: detail, needs: []string{name, master},
			apply: func(h *netlink.Handle) error {
				l, err := h.LinkByName(name)
				if err != nil {
					return fmt.Errorf("set master of %s: %w", name, err)
				}
				m, err := h.LinkByName(master)
				if err != nil {
					return fmt.Errorf("set master of %s: master %s: %w", name, master, err)
				}
				if bond {
					if err := h.LinkSetDown(l); err != nil {
						return fmt.Errorf("set master of %s: LinkSetDown: %w", name, err)
					}
				}
				if err := h.LinkSetMasterByIndex(l, m.Attrs().Index); err != nil {
					return fmt.Errorf("set master of %s to %s: LinkSetMasterByIndex: %w", name, master, err)
				}
				return nil
			}})
		s.master = master
	}
}

// rank orders links for MTUs and bringing up: masters before ports,
// parents before vlans.
func rank(kind string) int {
	switch kind {
	case manifest.KindLoopback:
		return 0
	case manifest.KindBridge, manifest.KindBond:
		return 1
	case manifest.KindVLAN:
		return 3
	}
	return 2
}

// byRank returns the wanted links in rank order (stable), vlans after
// their parents.
func (p *planner) byRank() []*manifest.Link {
	var out []*manifest.Link
	for r := 0; r <= 2; r++ {
		for i := range p.want.Links {
			if rank(p.want.Links[i].Kind) == r {
				out = append(out, &p.want.Links[i])
			}
		}
	}
	placed := map[string]bool{}
	for _, l := range out {
		placed[l.Name] = true
	}
	for changed := true; changed; {
		changed = false
		for i := range p.want.Links {
			w := &p.want.Links[i]
			if w.Kind != manifest.KindVLAN || placed[w.Name] {
				continue
			}
			if pw := p.wanted(w.Parent); pw != nil && pw.Kind == manifest.KindVLAN && !placed[pw.Name] {
				continue
			}
			out = append(out, w)
			placed[w.Name] = true
			changed = true
		}
	}
	for i := range p.want.Links { // vlans in a parent cycle (refused by validation)
		if !placed[p.want.Links[i].Name] {
			out = append(out, &p.want.Links[i])
		}
	}
	return out
}

func (p *planner) mtus() {
	// Ports and parents before masters and vlans: a vlan's MTU cannot
	// exceed its parent's.
	links := p.byRank()
	var ordered []*manifest.Link
	for _, l := range links {
		if rank(l.Kind) == 2 {
			ordered = append(ordered, l)
		}
	}
	for _, l := range links {
		if rank(l.Kind) != 2 {
			ordered = append(ordered, l)
		}
	}
	for _, w := range ordered {
		s := p.state[w.Name]
		if w.MTU == 0 || !p.alive(w.Name) || !s.created && s.mtu == w.MTU {
			continue
		}
		name, mtu := w.Name, w.MTU
		p.add(Op{Action: ActSetMTU, Link: name, Detail: fmt.Sprint(mtu), needs: []string{name},
			apply: func(h *netlink.Handle) error {
				l, err := h.LinkByName(name)
				if err != nil {
					return fmt.Errorf("set mtu of %s: %w", name, err)
				}
				if err := h.LinkSetMTU(l, mtu); err != nil {
					return fmt.Errorf("set mtu of %s to %d: LinkSetMTU: %w", name, mtu, err)
				}
				return nil
			}})
		s.mtu = mtu
	}
}

func (p *planner) macs() {
	for i := range p.want.Links {
		w := &p.want.Links[i]
		s := p.state[w.Name]
		// A device is matched by its MAC: it has it already.
		if w.MAC == "" || w.Kind == manifest.KindDevice || !p.alive(w.Name) || !s.created && s.mac == normMAC(w.MAC) {
			continue
		}
		hw, err := net.ParseMAC(w.MAC)
		if err != nil {
			continue // validation refuses it
		}
		name := w.Name
		p.add(Op{Action: ActSetMAC, Link: name, Detail: hw.String(), needs: []string{name},
			apply: func(h *netlink.Handle) error {
				l, err := h.LinkByName(name)
				if err != nil {
					return fmt.Errorf("set mac of %s: %w", name, err)
				}
				if err := h.LinkSetHardwareAddr(l, hw); err != nil {
					return fmt.Errorf("set mac of %s to %s: LinkSetHardwareAddr: %w", name, hw, err)
				}
				return nil
			}})
		s.mac = hw.String()
	}
}

var addrScopes = map[string]netlink.Scope{
	"": netlink.SCOPE_UNIVERSE, "global": netlink.SCOPE_UNIVERSE, "site": netlink.SCOPE_SITE,
	"link": netlink.SCOPE_LINK, "host": netlink.SCOPE_HOST,
}

func (p *planner) addresses() {
	for i := range p.want.Links {
		w := &p.want.Links[i]
		s := p.state[w.Name]
		if !p.alive(w.Name) {
			continue
		}
		for _, a := range w.Addresses {
			pf, err := netip.ParsePrefix(a.CIDR)
			if err != nil || s.addrs[pf] {
				continue
			}
			name, scope := w.Name, addrScopes[a.Scope]
			ipnet := &net.IPNet{IP: net.IP(pf.Addr().AsSlice()), Mask: net.CIDRMask(pf.Bits(), pf.Addr().BitLen())}
			p.add(Op{Action: ActAddAddr, Link: name, Detail: pf.String() + scopeSuffix(a.Scope), needs: []string{name},
				apply: func(h *netlink.Handle) error {
					l, err := h.LinkByName(name)
					if err != nil {
						return fmt.Errorf("add address %s to %s: %w", ipnet, name, err)
					}
					if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipnet, Scope: int(scope)}); err != nil {
						return fmt.Errorf("add address %s to %s: AddrAdd: %w", ipnet, name, err)
					}
					return nil
				}})
			s.addrs[pf] = true
		}
	}
}

func (p *planner) ups() {
	var names []string
	if p.loName != "" && p.wanted(p.loName) == nil {
		names = append(names, p.loName)
	}
	for _, w := range p.byRank() {
		if w.Up || w.Kind == manifest.KindLoopback {
			names = append(names, w.Name)
		}
	}
	for _, name := range names {
		s := p.state[name]
		if s == nil || s.up || !p.alive(name) {
			continue
		}
		p.add(Op{Action: ActSetUp, Link: name, needs: []string{name},
			apply: func(h *netlink.Handle) error {
				l, err := h.LinkByName(name)
				if err != nil {
					return fmt.Errorf("set %s up: %w", name, err)
				}
				if err := h.LinkSetUp(l); err != nil {
					return fmt.Errorf("set %s up: LinkSetUp: %w", name, err)
				}
				return nil
			}})
		s.up = true
	}
}

// curKey is the key of a route of cur, with wanted link names.
func (p *planner) curKey(r manifest.Route) string {
	if w, ok := p.wantOf[r.Dev]; ok {
		r.Dev = w
	}
	return routeString(r)
}

var routeScopes = map[string]netlink.Scope{
	"": netlink.SCOPE_UNIVERSE, "global": netlink.SCOPE_UNIVERSE, "link": netlink.SCOPE_LINK, "host": netlink.SCOPE_HOST,
}

func (p *planner) routes(cur manifest.Network) {
	have := map[string]bool{}
	for _, r := range cur.Routes {
		have[p.curKey(r)] = true
	}
	for _, r := range p.want.Routes {
		key := routeString(r)
		if have[key] {
			continue
		}
		have[key] = true
		dst, err := manifest.RouteDst(r.Dst)
		if err != nil {
			continue // validation refuses it
		}
		var needs []string
		if r.Dev != "" {
			if !p.alive(r.Dev) {
				continue // on a missing device
			}
			needs = []string{r.Dev}
		}
		nr := &netlink.Route{
			Dst:      &net.IPNet{IP: net.IP(dst.Addr().AsSlice()), Mask: net.CIDRMask(dst.Bits(), dst.Addr().BitLen())},
			Priority: r.Metric,
			Scope:    routeScopes[r.Scope],
			Table:    r.TableOrMain(),
		}
		if r.Gateway != "" {
			nr.Gw = net.ParseIP(r.Gateway)
		}
		if r.Src != "" {
			nr.Src = net.ParseIP(r.Src)
		}
		dev := r.Dev
		p.add(Op{Action: ActAddRoute, Link: dev, Detail: key, needs: needs,
			apply: func(h *netlink.Handle) error {
				rt := *nr
				if dev != "" {
					l, err := h.LinkByName(dev)
					if err != nil {
						return fmt.Errorf("add route %s: dev %s: %w", key, dev, err)
					}
					rt.LinkIndex = l.Attrs().Index
				}
				if err := h.RouteAdd(&rt); err != nil {
					return fmt.Errorf("add route %s: RouteAdd: %w", key, err)
				}
				return nil
			}})
	}
}

func (p *planner) curRuleKey(r manifest.Rule) string {
	if w, ok := p.wantOf[r.IIF]; ok {
		r.IIF = w
	}
	if w, ok := p.wantOf[r.OIF]; ok {
		r.OIF = w
	}
	return ruleString(r)
}

func (p *planner) rules(cur manifest.Network) {
	have := map[string]bool{}
	for _, r := range cur.Rules {
		have[p.curRuleKey(r)] = true
	}
	for _, r := range p.want.Rules {
		key := ruleString(r)
		if have[key] {
			continue
		}
		have[key] = true
		nr := netlink.NewRule()
		nr.Priority = r.Priority
		nr.Family = netlink.FAMILY_V4
		if r.Family == "inet6" {
			nr.Family = netlink.FAMILY_V6
		}
		nr.Table = r.Table
		nr.IifName, nr.OifName = r.IIF, r.OIF
		nr.Mark = r.Mark
		var err error
		if nr.Src, err = ipNet(r.Src); err != nil {
			continue // validation refuses it
		}
		if nr.Dst, err = ipNet(r.Dst); err != nil {
			continue
		}
		p.add(Op{Action: ActAddRule, Detail: key,
			apply: func(h *netlink.Handle) error {
				if err := h.RuleAdd(nr); err != nil {
					return fmt.Errorf("add rule %s: RuleAdd: %w", key, err)
				}
				return nil
			}})
	}
}

func ipNet(s string) (*net.IPNet, error) {
	if s == "" {
		return nil, nil
	}
	pf, err := netip.ParsePrefix(s)
	if err != nil {
		return nil, err
	}
	return &net.IPNet{IP: net.IP(pf.Addr().AsSlice()), Mask: net.CIDRMask(pf.Bits(), pf.Addr().BitLen())}, nil
}

// rename gives a link its wanted name; the kernel renames only a link that
// is down.
func rename(h *netlink.Handle, from, to string) error {
	l, err := h.LinkByName(from)
	if err != nil {
		return fmt.Errorf("rename %s to %s: %w", from, to, err)
	}
	if l.Attrs().Flags&net.FlagUp != 0 {
		if err := h.LinkSetDown(l); err != nil {
			return fmt.Errorf("rename %s to %s: LinkSetDown: %w", from, to, err)
		}
	}
	if err := h.LinkSetName(l, to); err != nil {
		return fmt.Errorf("rename %s to %s: LinkSetName: %w", from, to, err)
	}
	return nil
}
