package netconf

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/u-root/uio/ulog/ulogtest"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/luoinit/luoinit/manifest"
)

// inNewNetns runs f on a goroutine whose OS thread has its own, new network
// namespace. The thread is never given back to the runtime: it ends with
// the goroutine, so the namespace never leaks to other code, and the host's
// namespace is never touched.
func inNewNetns(t *testing.T, f func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_NET_ADMIN) for a network namespace")
	}
	done := make(chan struct{})
	var skip string
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			skip = "unshare(CLONE_NEWNET): " + err.Error()
			return
		}
		f()
	}()
	<-done
	if skip != "" {
		t.Skip(skip)
	}
}

func TestApplyInNetns(t *testing.T) {
	want := manifest.Network{
		Links: []manifest.Link{
			{Name: "lo", Kind: "loopback", Up: true},
			{Name: "d0", Kind: "dummy", MTU: 1500, Up: true, Addresses: addrs("10.0.0.1/24", "10.0.1.1/24", "fd00::1/64")},
			{Name: "v0", Kind: "veth", Peer: "v1", MTU: 1500, Master: "br0", Up: true},
			{Name: "v1", Kind: "veth", Peer: "v0", MTU: 1400, Up: true, Addresses: addrs("10.2.0.2/24")},
			{Name: "br0", Kind: "bridge", MTU: 1500, Up: true, Addresses: addrs("10.2.0.1/24")},
			{Name: "d0.10", Kind: "vlan", Parent: "d0", VLANID: 10, MTU: 1500, Up: true, Addresses: addrs("10.10.0.1/24")},
		},
		Routes: []manifest.Route{
			{Dst: "default", Gateway: "10.0.0.254", Dev: "d0"},
			{Dst: "10.50.0.0/16", Gateway: "10.2.0.254", Dev: "br0", Metric: 100},
			{Dst: "10.60.0.0/24", Dev: "d0.10", Scope: "link"},
			{Dst: "10.70.0.0/16", Gateway: "10.2.0.254", Dev: "br0", Table: 100}, // the rule's table
		},
		Rules: []manifest.Rule{{Priority: 100, Family: "inet", Src: "10.2.0.0/24", Table: 100}},
	}
	inNewNetns(t, func() {
		// Kernels without the dummy or 8021q modules: a veth stands in
		// for the dummy, and the vlan is left out.
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			t.Fatal(err)
		}
		probe := netlink.NewLinkAttrs()
		probe.Name = "probe0"
		if err := h.LinkAdd(&netlink.Dummy{LinkAttrs: probe}); err != nil {
			t.Logf("no dummy links (%v): d0 is a veth", err)
			want.Links[1].Kind, want.Links[1].Peer = "veth", "d0p"
			want.Links = append(want.Links, manifest.Link{Name: "d0p", Kind: "veth", Peer: "d0", MTU: 1500})
			probe.Name = "probe1"
			if err := h.LinkAdd(&netlink.Veth{LinkAttrs: probe, PeerName: "probe0"}); err != nil {
				t.Fatal(err)
			}
		}
		vp := netlink.NewLinkAttrs()
		vp.Name = "probe0.5"
		if l, err := h.LinkByName("probe0"); err == nil {
			vp.ParentIndex = l.Attrs().Index
		}
		if err := h.LinkAdd(&netlink.Vlan{LinkAttrs: vp, VlanId: 5}); err != nil {
			t.Logf("no vlans (%v): d0.10 left out", err)
			want.Links = slices.DeleteFunc(want.Links, func(l manifest.Link) bool { return l.Kind == "vlan" })
			want.Routes = slices.DeleteFunc(want.Routes, func(r manifest.Route) bool { return r.Dev == "d0.10" })
		}
		for _, name := range []string{"probe0.5", "probe0", "probe1"} {
			if l, err := h.LinkByName(name); err == nil {
				h.LinkDel(l)
			}
		}
		h.Close()
		if err := (&manifest.Config{Version: 1, Network: want}).Validate(); err != nil {
			t.Fatal(err)
		}

		applied, errs, took := Apply(want, ulogtest.Logger{TB: t})
		t.Logf("applied %d ops in %v", applied, took)
		for _, err := range errs {
			t.Errorf("apply: %v", err)
		}
		if applied == 0 {
			t.Error("nothing applied")
		}

		got, err := Snapshot("all", nil)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := Dump(got), Dump(want); g != w {
			t.Errorf("after Apply, Snapshot is\n%s\nwant\n%s", g, w)
		}

		applied, errs, _ = Apply(want, ulogtest.Logger{TB: t})
		if applied != 0 || len(errs) != 0 {
			t.Errorf("second Apply: applied %d, errs %v", applied, errs)
		}

		// Listed: v0 brings its peer and its bridge, not d0.
		listed, err := Snapshot("listed", []string{"v0"})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, l := range listed.Links {
			names = append(names, l.Name)
		}
		slices.Sort(names)
		if g := strings.Join(names, " "); g != "br0 v0 v1" {
			t.Errorf("carry listed: links %q", g)
		}
		if len(listed.Routes) != 2 || len(listed.Rules) != 1 {
			t.Errorf("carry listed: %d routes, %d rules", len(listed.Routes), len(listed.Rules))
		}
		if none, err := Snapshot("none", nil); err != nil || Dump(none) != "" {
			t.Errorf("carry none: %v %q", err, Dump(none))
		}
	})
}

// TestApplyLoopbackOnly: a want of nothing but the loopback (the shortcut
// that reads no snapshot) brings lo up once, as the plan would, with the
// kernel's own addresses, and then has nothing to do; what else is there
// is left alone.
func TestApplyLoopbackOnly(t *testing.T) {
	for _, want := range []manifest.Network{{}, {Links: []manifest.Link{{Name: "lo", Kind: "loopback", Up: true}}}} {
		if !LoopbackOnly(want) {
			t.Fatalf("%+v is not loopback only", want)
		}
		inNewNetns(t, func() {
			h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "x0"}, PeerName: "x1"}); err != nil {
				t.Skipf("no veth links here: %v", err)
			}
			var logged []string
			log := func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }
			n, errs, _ := Apply(want, printf(log))
			if n != 1 || len(errs) != 0 || !slices.Contains(logged, "network: set-up lo") {
				t.Fatalf("first apply: %d changes, %v, log %q", n, errs, logged)
			}
			cur, err := snapshot(h, true)
			if err != nil {
				t.Fatal(err)
			}
			var lo, x0 *manifest.Link
			for i := range cur.Links {
				switch cur.Links[i].Name {
				case "lo":
					lo = &cur.Links[i]
				case "x0":
					x0 = &cur.Links[i]
				}
			}
			if lo == nil || !lo.Up || x0 == nil || x0.Up {
				t.Fatalf("after apply: lo %+v, x0 %+v", lo, x0)
			}
			if n, errs, _ := Apply(want, printf(log)); n != 0 || len(errs) != 0 {
				t.Fatalf("second apply: %d changes, %v", n, errs)
			}
			if ops := Plan(cur, want); len(ops) != 0 {
				t.Fatalf("the plan has more to do than the shortcut did: %v", ops)
			}
		})
	}
	for _, want := range []manifest.Network{
		{Links: []manifest.Link{{Name: "lo", Kind: "loopback", Addresses: addrs("10.9.9.9/32")}}},
		{Routes: []manifest.Route{{Dst: "default", Dev: "lo"}}},
		{Links: []manifest.Link{{Name: "d0", Kind: "dummy"}}},
	} {
		if LoopbackOnly(want) {
			t.Errorf("%+v taken for loopback only", want)
		}
	}
}
