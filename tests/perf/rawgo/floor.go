//go:build floor

package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/BurntSushi/toml"
	"github.com/u-root/u-root/pkg/boot/kexec"
	"github.com/u-root/u-root/pkg/cmdline"
	"github.com/u-root/u-root/pkg/cpio"
	"github.com/vishvananda/netlink"
)

// floor links what luoinit calls of its dependencies (TOML, netlink's
// links, addresses, routes and rules, the cpio writer and reader,
// kexec_file_load, the kernel command line), so that the binary holds
// them and runs their package inits. It calls them only when given a
// ninth argument, which never happens.
func floor() {
	if len(os.Args) < 9 {
		return
	}
	var v map[string]any
	md, err := toml.Decode(os.Args[1], &v)
	fmt.Println(md.Undecoded(), err)
	toml.NewEncoder(os.Stdout).Encode(v)
	toml.NewDecoder(os.Stdin).Decode(&v)
	h, _ := netlink.NewHandle()
	l, _ := h.LinkList()
	h.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.NewLinkAttrs()})
	h.LinkAdd(&netlink.Veth{})
	h.LinkAdd(&netlink.Vlan{})
	h.LinkAdd(&netlink.Bridge{})
	h.LinkAdd(netlink.NewLinkBond(netlink.NewLinkAttrs()))
	h.LinkAdd(&netlink.Tuntap{})
	h.LinkSetUp(l[0])
	h.LinkSetMaster(l[0], l[1])
	h.AddrAdd(l[0], &netlink.Addr{})
	h.AddrList(l[0], netlink.FAMILY_ALL)
	h.RouteReplace(&netlink.Route{})
	h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{}, 0)
	h.RuleAdd(netlink.NewRule())
	h.RuleList(netlink.FAMILY_ALL)
	var b bytes.Buffer
	w := cpio.Newc.Writer(&b)
	w.WriteRecord(cpio.StaticFile("a", "b", 0o644))
	cpio.WriteTrailer(w)
	cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(b.Bytes())))
	kexec.FileLoad(os.Stdin, os.Stdin, "")
	fmt.Println(cmdline.NewCmdLine().Raw, cmdline.NewUpdateFilter("", nil, nil))
}
