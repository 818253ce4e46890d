package prepare

import (
	"time"

	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/netconf"
)

// snapshotNetwork records the network configuration into the manifest,
// as the config's [network] carry setting says. It runs in phase
// prepared, while the workloads still serve. A failure is logged and the
// live update goes on without it: the next kernel then brings up only
// what the config declares.
func (s *state) snapshotNetwork() {
	n := s.o.Config.Network
	carry := n.Carry
	if carry == "" {
		carry = manifest.CarryAll
	}
	if carry == manifest.CarryNone {
		return
	}
	t0 := time.Now()
	snap, err := netconf.Snapshot(carry, n.Interfaces)
	if err != nil {
		s.log.Printf("network not recorded (the next kernel brings up only the config's static network): %v", err)
		return
	}
	s.m.Network = snap
	s.log.Printf("network recorded (%s): %d links, %d routes, %d rules in %v", carry, len(snap.Links), len(snap.Routes), len(snap.Rules), time.Since(t0).Round(time.Microsecond))
}
