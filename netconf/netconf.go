// Package netconf carries a machine's network configuration across a live
// update: Snapshot reads it through netlink before the kexec (into the
// manifest's [network]), and Apply puts it back in the next kernel before
// the workloads start. Plan, which Apply runs, is pure: it says what to do
// to turn one Network into another, and never removes what it did not add.
//
//	n, err := netconf.Snapshot(cfg.Network.Carry, cfg.Network.Interfaces)
//	m.Network = n // written with the manifest by prepare
//	// ... kexec; in the next kernel, as PID 1:
//	applied, errs, took := netconf.Apply(m.Network, log.Printf)
//	log.Printf("network: %d changes in %v, %d failed", applied, took, len(errs))
//
// It talks netlink only (github.com/vishvananda/netlink), and never runs ip.
package netconf

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/luoinit/luoinit/manifest"
)

// The actions of an Op, in the order Plan gives them.
const (
	ActMissing   = "missing" // a wanted device is not there: Apply reports it
	ActRename    = "rename"
	ActCreate    = "create"
	ActSetMaster = "set-master"
	ActBondMode  = "set-bond-mode" // a bond that exists already (the driver's bond0) in another mode
	ActSetMTU    = "set-mtu"
	ActSetMAC    = "set-mac"
	ActAddAddr   = "add-address"
	ActSetUp     = "set-up"
	ActAddRoute  = "add-route"
	ActAddRule   = "add-rule"
)

// Op is one change, in the order Plan gives them.
type Op struct {
	Action string // "create", "rename", "set-bond-mode", "set-master", "set-mtu", "set-mac", "add-address", "set-up", "add-route", "add-rule" (or "missing")
	Link   string // the link it is about (its wanted name); "" for a rule
	Detail string // human readable: the address, the route, ...

	apply func(*netlink.Handle) error
	needs []string // links that must exist: if their create failed, the op is skipped
	makes []string // links a create makes
}

// String describes the op on one line.
func (o Op) String() string {
	var b strings.Builder
	b.WriteString(o.Action)
	if o.Link != "" {
		b.WriteString(" " + o.Link)
	}
	if o.Detail != "" {
		b.WriteString(": " + o.Detail)
	}
	return b.String()
}

// Dump is a normalised, sorted, one-item-per-line text form of a Network,
// for comparing one state with another: no ifindexes, MACs only where the
// Network has them, addresses, routes and rules in canonical form.
func Dump(n manifest.Network) string {
	var lines []string
	for _, l := range n.Links {
		var b strings.Builder
		fmt.Fprintf(&b, "link %s %s", l.Name, l.Kind)
		if l.MAC != "" {
			fmt.Fprintf(&b, " mac %s", normMAC(l.MAC))
		}
		if l.MTU != 0 {
			fmt.Fprintf(&b, " mtu %d", l.MTU)
		}
		if l.Master != "" {
			fmt.Fprintf(&b, " master %s", l.Master)
		}
		if l.Peer != "" {
			fmt.Fprintf(&b, " peer %s", l.Peer)
		}
		if l.Parent != "" {
			fmt.Fprintf(&b, " parent %s", l.Parent)
		}
		if l.VLANID != 0 {
			fmt.Fprintf(&b, " vlan_id %d", l.VLANID)
		}
		if l.BondMode != "" {
			fmt.Fprintf(&b, " bond_mode %s", l.BondMode)
		}
		if l.Up {
			b.WriteString(" up")
		}
		lines = append(lines, b.String())
		for _, a := range l.Addresses {
			lines = append(lines, fmt.Sprintf("address %s %s%s", l.Name, normPrefix(a.CIDR), scopeSuffix(a.Scope)))
		}
	}
	for _, r := range n.Routes {
		lines = append(lines, "route "+routeString(r))
	}
	for _, r := range n.Rules {
		lines = append(lines, "rule "+ruleString(r))
	}
	sort.Strings(lines)
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

func scopeSuffix(scope string) string {
	if scope == "" || scope == "global" {
		return ""
	}
	return " scope " + scope
}

// canonical writes s as parse reads it, or as it is if parse refuses it.
func canonical[T fmt.Stringer](s string, parse func(string) (T, error)) string {
	v, err := parse(s)
	if err != nil {
		return s
	}
	return v.String()
}

// normMAC writes a MAC in lower case with colons.
func normMAC(s string) string { return canonical(s, net.ParseMAC) }

// normPrefix writes an address with its prefix length canonically.
func normPrefix(s string) string { return canonical(s, netip.ParsePrefix) }

// normAddr writes an IP address canonically ("" stays "").
func normAddr(s string) string { return canonical(s, netip.ParseAddr) }

// normDst writes a route's destination canonically: "default",
// "default6" or a CIDR.
func normDst(s string) string {
	p, err := manifest.RouteDst(s)
	if err != nil {
		return s
	}
	if p.Bits() == 0 {
		if p.Addr().Is4() {
			return manifest.DefaultDst
		}
		return manifest.DefaultDst6
	}
	return p.String()
}

func routeString(r manifest.Route) string {
	var b strings.Builder
	b.WriteString(normDst(r.Dst))
	if r.Gateway != "" {
		b.WriteString(" via " + normAddr(r.Gateway))
	}
	if r.Dev != "" {
		b.WriteString(" dev " + r.Dev)
	}
	if r.Metric != 0 {
		fmt.Fprintf(&b, " metric %d", r.Metric)
	}
	if t := r.TableOrMain(); t != manifest.MainTable {
		fmt.Fprintf(&b, " table %d", t)
	}
	b.WriteString(scopeSuffix(r.Scope))
	if r.Src != "" {
		b.WriteString(" src " + normAddr(r.Src))
	}
	return b.String()
}

func ruleString(r manifest.Rule) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", r.Priority, r.Family)
	if r.Src != "" {
		b.WriteString(" from " + normPrefix(r.Src))
	}
	if r.Dst != "" {
		b.WriteString(" to " + normPrefix(r.Dst))
	}
	if r.IIF != "" {
		b.WriteString(" iif " + r.IIF)
	}
	if r.OIF != "" {
		b.WriteString(" oif " + r.OIF)
	}
	if r.Mark != 0 {
		fmt.Fprintf(&b, " fwmark %#x", r.Mark)
	}
	fmt.Fprintf(&b, " table %d", r.Table)
	return b.String()
}
