//go:build luoinittest

package prepare

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"github.com/u-root/uio/ulog"
	"golang.org/x/sys/unix"
)

// In a test build, LUOINIT_TEST_MANIFEST_FILTER names a command (its
// arguments after commas: the kernel command line, where PID 1 takes it
// from, has no spaces in a parameter) that reads the manifest on stdin
// and writes what is carried instead, unsealed if it starts with
// TestUnsealed.
func init() {
	// LUOINIT_TEST_STOP_AT=STEP: at that step (see testStep) prepare says
	// so and stops itself with SIGSTOP, for the test to kill it there.
	testStep = func(step string, log ulog.Logger) {
		if os.Getenv("LUOINIT_TEST_STOP_AT") != step {
			return
		}
		log.Printf("test hook: stopping at step %s (pid %d)", step, os.Getpid())
		// To this very thread: a SIGSTOP to the process may be taken by
		// another thread, and this one would go on a little first.
		runtime.LockOSThread()
		unix.Tgkill(os.Getpid(), unix.Gettid(), unix.SIGSTOP)
		runtime.UnlockOSThread()
	}
	testManifest = func(b []byte) ([]byte, bool, error) {
		filter := strings.Split(os.Getenv("LUOINIT_TEST_MANIFEST_FILTER"), ",")
		if filter[0] == "" {
			return b, false, nil
		}
		cmd := exec.Command(filter[0], filter[1:]...)
		cmd.Stdin = bytes.NewReader(b)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w: %s", strings.Join(filter, " "), err, stderr.String())
		}
		if rest, ok := bytes.CutPrefix(out, []byte(TestUnsealed)); ok {
			return rest, true, nil
		}
		return out, false, nil
	}
}
