package status

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func full() *Status {
	return &Status{
		State: Finished, Boot: BootUpdated, Generation: 3, Lost: 1,
		Restore: 15 * time.Millisecond, HandoffDone: 40 * time.Millisecond, Network: time.Millisecond,
		NetworkChanges: 4, LastReady: 1800 * time.Millisecond, OldKernelBlackout: 600 * time.Millisecond, Blackout: 2400 * time.Millisecond,
		Workloads: []Workload{
			{Name: "kv", Handoff: "socket", Pid: 41, FDs: 2, FDsDelivered: 1, Ready: time.Second,
				LostFDs: []LostFD{{FD: "heap", Session: "luoinit.kv", Token: 2, Error: `luo: retrieve fd "x": ENOENT`}}},
			{Name: "vmm", Handoff: "none", Pid: 52,
				Sessions: []Session{
					{Name: "guest ram=1 \"q\"\n", Via: "proc", Mode: "leave", Result: SessionTaken, Pid: 60},
					{Name: "second", Via: "push", Mode: "retrieve", Result: SessionUndelivered, Error: "timeout"},
				}},
		},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, st := range []*Status{full(), {State: Normal, Boot: BootNormal}, {State: Prepared}, {State: Degraded, Boot: BootUpdated, Generation: 3, Reason: "no /dev/liveupdate: \"quoted\" = and\nnewline"}} {
		got, err := Parse(st.Marshal())
		if err != nil {
			t.Fatalf("Parse(Marshal) = %v\n%s", err, st.Marshal())
		}
		if !reflect.DeepEqual(got, st) {
			t.Errorf("round trip:\n got %+v\nwant %+v\nfile:\n%s", got, st, st.Marshal())
		}
	}
}

// The first lines stay what shell scripts and older readers grep for.
func TestFirstLines(t *testing.T) {
	b := string(full().Marshal())
	if !strings.HasPrefix(b, "state=finished\nboot=updated\ngeneration=3\nformat=1\nlost=1\n") {
		t.Fatalf("file starts %q", b[:60])
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"boot=normal\n", "no state= line"},
		{"state=normal\nformat=2\n", "newer luoinit"},
		{"state=normal\ngeneration=x\n", "generation"},
		{"state=normal\nnonsense\n", "not key=value"},
		{"state=normal\nlost_fd workload=\"kv\" fd=\"a\"\n", "before its workload line"},
		{"state=normal\nworkload name=\"kv\" pid=x\n", "pid"},
		{"state=normal\nworkload name=\"kv\"\nworkload name=\"kv\"\n", "twice"},
		{"state=normal\nworkload name=\"kv\nx\n", "quoted"},
		{"state=normal\nworkload name=\"kv\"pid=1\n", "no space"},
		{"state=normal\nworkload name=1 name=2\n", "twice"},
	} {
		_, err := Parse([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error with %q", tc.in, err, tc.want)
		}
	}
	// Unknown keys and kinds are skipped: a newer writer's additions.
	st, err := Parse([]byte("state=normal\nfuture=1\nfuture_kind a=1\n"))
	if err != nil || st.State != Normal {
		t.Errorf("unknown keys: %+v, %v", st, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(full().Marshal())
	f.Add([]byte("state=normal\n"))
	f.Add([]byte("state=x\nworkload name=\"a\" pid=1\nsession workload=\"a\" name=\"\\x00\"\n"))
	// A state word ending in a CR, written bare, lost the CR when read
	// back (a line's CR before its LF is the line's end).
	f.Add([]byte("state=\r\r"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := Parse(data)
		if err != nil {
			return
		}
		again, err := Parse(st.Marshal())
		if err != nil {
			t.Fatalf("a parsed status does not parse again: %v\n%s", err, st.Marshal())
		}
		if !reflect.DeepEqual(again, st) {
			t.Fatalf("not stable:\n%+v\n%+v", st, again)
		}
	})
}

func TestReadWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	if _, err := Read(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Read of nothing = %v, want ErrNotExist", err)
	}
	if err := Write(dir, full()); err != nil {
		t.Fatal(err)
	}
	got, err := Read(dir)
	if err != nil || !reflect.DeepEqual(got, full()) {
		t.Fatalf("Read = %+v, %v", got, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if err := os.WriteFile(Path(dir), make([]byte, maxSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(dir); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: %v", err)
	}
}

func TestWait(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The file does not exist yet; it appears restoring, then finished,
	// each time by rename (Write).
	go func() {
		time.Sleep(50 * time.Millisecond)
		Write(dir, &Status{State: Restoring, Boot: BootUpdated, Generation: 2})
		time.Sleep(50 * time.Millisecond)
		Write(dir, &Status{State: Finished, Boot: BootUpdated, Generation: 2})
	}()
	t0 := time.Now()
	st, err := Wait(ctx, dir, Finished)
	if err != nil || st.State != Finished || st.Generation != 2 {
		t.Fatalf("Wait = %+v, %v", st, err)
	}
	// Woken by inotify, not by the 1 s poll fallback.
	if d := time.Since(t0); d > 900*time.Millisecond {
		t.Errorf("Wait took %v: the rename did not wake it", d)
	}
}

func TestWaitEnds(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, &Status{State: Degraded}); err != nil {
		t.Fatal(err)
	}
	if _, err := Wait(context.Background(), dir, Finished); !errors.Is(err, ErrOtherEnd) {
		t.Errorf("waiting for finished on a degraded restore = %v, want ErrOtherEnd", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := Wait(ctx, dir, Prepared); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("timeout = %v, want DeadlineExceeded", err)
	}
	if _, err := Wait(context.Background(), filepath.Join(dir, "none"), Finished); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing dir = %v, want ErrNotExist", err)
	}
	if _, err := Wait(context.Background(), dir, "done"); err == nil {
		t.Errorf("waiting for an unknown state succeeded")
	}
}

// On a kernel without inotify (the VM-test kernel has no
// CONFIG_INOTIFY_USER) Wait reads the file every PollInterval.
func TestPollFallback(t *testing.T) {
	dir := t.TempDir()
	go func() {
		time.Sleep(30 * time.Millisecond)
		Write(dir, &Status{State: Finished, Generation: 5})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := poll(ctx, dir, Finished)
	if err != nil || st.Generation != 5 {
		t.Fatalf("poll = %+v, %v", st, err)
	}
	if _, err := poll(ctx, filepath.Join(dir, "none"), Finished); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("poll of a missing dir = %v", err)
	}
}
