package prepare

import (
	"errors"
	"log"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/luoinit/luoinit/status"
)

// prepare moves the state to prepared, then frozen, keeping the rest of
// the file; a cancel puts the file back as it was, or removes the one it
// created.
func TestStateFileMoves(t *testing.T) {
	booted := &status.Status{State: status.Finished, Boot: status.BootUpdated, Generation: 3,
		Workloads: []status.Workload{{Name: "kv", Handoff: "socket", FDs: 1, FDsDelivered: 1}}}
	for _, tc := range []struct {
		desc string
		prev *status.Status
	}{
		{"after a restore", booted},
		{"no state file (luoinit is not PID 1)", nil},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			if tc.prev != nil {
				if err := status.Write(dir, tc.prev); err != nil {
					t.Fatal(err)
				}
			}
			var logb strings.Builder
			s := newState(Options{StateDir: dir, Log: log.New(&logb, "", 0)})
			for _, want := range []status.State{status.Prepared, status.Frozen} {
				s.setState(want)
				st, err := status.Read(dir)
				if err != nil || st.State != want {
					t.Fatalf("after setState(%s): %+v, %v", want, st, err)
				}
				if tc.prev != nil && (st.Generation != 3 || len(st.Workloads) != 1) {
					t.Errorf("setState(%s) lost the rest of the file: %+v", want, st)
				}
			}
			did := s.cancel()
			st, err := status.Read(dir)
			switch {
			case tc.prev == nil && !errors.Is(err, os.ErrNotExist):
				t.Errorf("after cancel: %+v, %v; want no state file again", st, err)
			case tc.prev != nil && (err != nil || !reflect.DeepEqual(st, tc.prev)):
				t.Errorf("after cancel: %+v, %v; want %+v", st, err, tc.prev)
			}
			if !strings.Contains(did, "state back to") {
				t.Errorf("cancel says %q", did)
			}
		})
	}
}
