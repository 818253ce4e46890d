package preflight

import (
	"fmt"
	"strings"
	"testing"

	"github.com/luoinit/luoinit/rootfs"
)

func TestCheckRoot(t *testing.T) {
	found := func(dev string, err error) func(rootfs.Spec) (string, error) {
		return func(rootfs.Spec) (string, error) { return dev, err }
	}
	for _, tc := range []struct {
		cmdline string
		find    func(rootfs.Spec) (string, error)
		status  Status
		text    string // "" with status OK: no finding at all
	}{
		{cmdline: "liveupdate=on", find: found("", nil)},
		{cmdline: "root=UUID=abc rw", find: found("/dev/vda", nil), status: OK, text: "root=UUID=abc rw is /dev/vda here now"},
		{cmdline: "root=LABEL=b ro rootwait=3", find: found("", nil), status: Warn, text: "names no block device here now"},
		{cmdline: "root=vda1", find: found("/dev/vda1", nil), status: Fail, text: "luoinit finds a root by"},
		{cmdline: "root=LABEL=x", find: found("", fmt.Errorf("root=LABEL=x: %w: vda1, vdb1", rootfs.ErrAmbiguous)), status: Fail, text: "vda1, vdb1"},
		{cmdline: "root=/dev/sda", find: found("", fmt.Errorf("/dev/sda is not a block device")), status: Warn, text: "not a block device"},
	} {
		t.Run(tc.cmdline, func(t *testing.T) {
			r := &Report{}
			r.checkRoot(Options{Cmdline: tc.cmdline, findRoot: tc.find})
			if tc.text == "" {
				if len(r.Findings) != 0 {
					t.Errorf("findings %v, want none", r.Findings)
				}
				return
			}
			if len(r.Findings) != 1 || r.Findings[0].Status != tc.status || !strings.Contains(r.Findings[0].Text, tc.text) {
				t.Errorf("findings %v, want one %v saying %q", r.Findings, tc.status, tc.text)
			}
		})
	}
}
