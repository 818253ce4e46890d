package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/u-root/uio/ulog/ulogtest"

	"github.com/luoinit/luoinit/control"
	"github.com/luoinit/luoinit/notify"
)

type testLogger struct{ t *testing.T }

func (l testLogger) Printf(format string, args ...any) { l.t.Logf(format, args...) }

// While PID 1 restores, a prepare handed to it is told to try again: it
// neither runs without the workloads' pids nor waits for the restore.
func TestPrepareHandlerWhileRestoring(t *testing.T) {
	var boot bootState
	h := prepareHandler(testLogger{t}, boot.get, notify.NewRegistry("", ulogtest.Logger{TB: t}), starter{})
	var out bytes.Buffer
	code := h(context.Background(), control.Request{Config: "/nonexistent"}, &out, make(chan struct{}))
	if code != exitTryAgain || !strings.Contains(out.String(), "PID 1 is still restoring the workloads") {
		t.Errorf("while restoring: exit %d, %q", code, out.String())
	}
	boot.set(nil)
	out.Reset()
	code = h(context.Background(), control.Request{Config: "/nonexistent"}, &out, make(chan struct{}))
	if code != 1 || !strings.Contains(out.String(), "/nonexistent") {
		t.Errorf("after the restore: exit %d, %q, want the config's error", code, out.String())
	}
}

func TestLuoinitIsPID1(t *testing.T) {
	dir := t.TempDir()
	self := filepath.Join(dir, "luoinit")
	other := filepath.Join(dir, "other-init")
	state := filepath.Join(dir, "state")
	os.WriteFile(self, []byte("a"), 0o755)
	os.WriteFile(other, []byte("b"), 0o755)
	link := filepath.Join(dir, "exe")
	os.Symlink(self, link)

	if ok, why := luoinitIsPID1(link, self, state); !ok || !strings.Contains(why, "is this luoinit") {
		t.Errorf("same binary: %v %q", ok, why)
	}
	if ok, _ := luoinitIsPID1(other, self, state); ok {
		t.Error("another init taken for luoinit")
	}
	if ok, _ := luoinitIsPID1(filepath.Join(dir, "unreadable"), self, state); ok {
		t.Error("an unreadable /proc/1/exe taken for luoinit")
	}
	// A state file a prepare left without PID 1 (no start time) says
	// nothing of PID 1; one PID 1 wrote says it is luoinit.
	os.WriteFile(state, []byte("state=prepared\nboot=normal\n"), 0o644)
	if ok, why := luoinitIsPID1(other, self, state); ok {
		t.Errorf("a prepare's state file taken for PID 1's: %q", why)
	}
	os.WriteFile(state, []byte("state=finished\nboot=updated\ninit_boottime_ns=1500000000\n"), 0o644)
	if ok, why := luoinitIsPID1(other, self, state); !ok || !strings.Contains(why, "written by luoinit as PID 1") {
		t.Errorf("state file: %v %q", ok, why)
	}
}

// A control socket that exists but refuses is never a reason to prepare
// standalone.
func TestHandToPID1Refused(t *testing.T) {
	capture(t)
	sock := filepath.Join(t.TempDir(), "control.sock")
	os.WriteFile(sock, nil, 0o600) // there, but nobody listens
	handed, err := handToPID1(sock, control.Request{}, nil, nil)
	if handed || err == nil || !errors.Is(err, control.ErrNoServer) || !strings.Contains(err.Error(), "--standalone") {
		t.Errorf("handed %v, error %v", handed, err)
	}
	// A PID 1 that answers "try again" gives its exit status. The
	// control socket answers root only.
	if os.Geteuid() != 0 {
		t.Log("not root: the round trip through control.Listen is left out (it answers root only)")
		return
	}
	sock = filepath.Join(t.TempDir(), "control.sock")
	var boot bootState
	srv, err := control.Listen(sock, prepareHandler(testLogger{t}, boot.get, notify.NewRegistry("", ulogtest.Logger{TB: t}), starter{}))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	_, e := capture(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		handed, err = handToPID1(sock, control.Request{}, nil, nil)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("no answer")
	}
	var ee exitError
	if !handed || !errors.As(err, &ee) || ee.code != exitTryAgain || !strings.Contains(e.String(), "try again") {
		t.Errorf("handed %v, error %v, output %q", handed, err, e.String())
	}
}
