//go:build luoinittest

package prepare

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// In a test build, the environment may change the manifest prepare
// carries: LUOINIT_TEST_MANIFEST_FILTER names a command (split at
// spaces) that reads the manifest on stdin and writes what is carried
// instead; LUOINIT_TEST_UNSEALED=1 leaves the memfd unsealed. PID 1 takes
// both from the kernel command line.
func init() {
	testManifest = func(b []byte) ([]byte, bool, error) {
		unsealed := os.Getenv("LUOINIT_TEST_UNSEALED") == "1"
		filter := strings.Fields(os.Getenv("LUOINIT_TEST_MANIFEST_FILTER"))
		if len(filter) == 0 {
			return b, unsealed, nil
		}
		cmd := exec.Command(filter[0], filter[1:]...)
		cmd.Stdin = bytes.NewReader(b)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w: %s", strings.Join(filter, " "), err, stderr.String())
		}
		return out, unsealed, nil
	}
}
