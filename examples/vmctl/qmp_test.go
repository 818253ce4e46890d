package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeQEMU answers QMP on a unix socket the way QEMU does for what save
// uses: it stops the VM for a migration, writes the state file, reports
// the scripted statuses of query-migrate (the last one repeats), and
// closes the connection after quit.
type fakeQEMU struct {
	socket string

	mu         sync.Mutex
	running    bool
	log        []string // commands in order, "--" between connections
	migrateErr string   // QEMU's answer to migrate, if it refuses it
	statuses   []string // what query-migrate says, one per call
	failDesc   string   // error-desc of a "failed" migration
	quitErr    string   // QEMU's answer to quit, if it refuses it
	quit       bool
}

func startFake(t *testing.T, f *fakeQEMU) *fakeQEMU {
	t.Helper()
	f.socket = filepath.Join(t.TempDir(), "qmp.sock")
	ln, err := net.Listen("unix", f.socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			f.serve(conn) // one client at a time, as QEMU's QMP chardev
		}
	}()
	return f
}

func (f *fakeQEMU) serve(conn net.Conn) {
	defer conn.Close()
	enc := json.NewEncoder(conn)
	enc.Encode(map[string]any{"QMP": map[string]any{"version": map[string]any{}, "capabilities": []string{"oob"}}})
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		var req struct {
			Execute   string          `json:"execute"`
			Arguments json.RawMessage `json:"arguments"`
			ID        any             `json:"id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			return
		}
		ret, qerr, event, closeAfter := f.answer(req.Execute, req.Arguments)
		if event != "" {
			enc.Encode(map[string]any{"event": event, "timestamp": map[string]int{"seconds": 1}})
		}
		if qerr != "" {
			enc.Encode(map[string]any{"error": map[string]string{"class": "GenericError", "desc": qerr}, "id": req.ID})
		} else {
			enc.Encode(map[string]any{"return": ret, "id": req.ID})
		}
		if closeAfter {
			return
		}
	}
}

// answer is the fake's QEMU: a return value or an error text, an event to
// send before the answer, and whether to close the connection after it.
func (f *fakeQEMU) answer(cmd string, args json.RawMessage) (ret any, qerr, event string, closeAfter bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cmd == "qmp_capabilities" && len(f.log) > 0 {
		f.log = append(f.log, "--")
	}
	f.log = append(f.log, cmd)
	switch cmd {
	case "qmp_capabilities", "migrate-set-capabilities", "migrate-set-parameters":
		return struct{}{}, "", "", false
	case "query-status":
		status := "paused"
		if f.running {
			status = "running"
		}
		return map[string]any{"status": status, "running": f.running}, "", "", false
	case "migrate":
		if f.migrateErr != "" {
			return nil, f.migrateErr, "", false
		}
		var a struct{ URI string }
		json.Unmarshal(args, &a)
		os.WriteFile(strings.TrimPrefix(a.URI, "file:"), []byte("QEVM state"), 0o600)
		f.running = false
		return struct{}{}, "", "STOP", false
	case "query-migrate":
		st := f.statuses[0]
		if len(f.statuses) > 1 {
			f.statuses = f.statuses[1:]
		}
		m := map[string]any{"status": st}
		if st == "failed" {
			m["error-desc"] = f.failDesc
		}
		return m, "", "", false
	case "migrate_cancel":
		f.statuses = []string{"cancelled"}
		return struct{}{}, "", "", false
	case "cont":
		f.running = true
		return struct{}{}, "", "RESUME", false
	case "quit":
		if f.quitErr != "" {
			return nil, f.quitErr, "", false
		}
		f.quit = true
		return struct{}{}, "", "SHUTDOWN", true
	}
	return nil, "The command " + cmd + " has not been found", "", false
}

func TestSave(t *testing.T) {
	migrateSteps := []string{"qmp_capabilities", "query-status", "migrate-set-capabilities", "migrate-set-parameters", "migrate"}
	undoSteps := []string{"--", "qmp_capabilities", "query-status", "cont"}
	for _, tc := range []struct {
		name        string
		fake        *fakeQEMU
		timeout     time.Duration
		wantErr     []string // "" when the save succeeds
		wantLog     []string
		wantRunning bool
		wantState   bool
	}{{
		name:      "completes",
		fake:      &fakeQEMU{running: true, statuses: []string{"setup", "active", "completed"}},
		wantLog:   concat(migrateSteps, []string{"query-migrate", "query-migrate", "query-migrate", "quit"}),
		wantState: true,
	}, {
		name: "QEMU refuses the migration",
		fake: &fakeQEMU{running: true, migrateErr: "Could not create '/x/vm.state.tmp': No such file or directory"},
		wantErr: []string{"qmp SOCKET: migrate: Could not create '/x/vm.state.tmp': No such file or directory (GenericError)",
			"save failed at migrate", "the VM runs again"},
		wantLog:     concat(migrateSteps, []string{"--", "qmp_capabilities", "query-status"}),
		wantRunning: true,
	}, {
		name:        "the migration fails with the VM stopped",
		fake:        &fakeQEMU{running: true, statuses: []string{"active", "failed"}, failDesc: "Unable to write to file: No space left on device"},
		wantErr:     []string{"failed: Unable to write to file: No space left on device", "the VM runs again", "no state file left"},
		wantLog:     concat(migrateSteps, []string{"query-migrate", "query-migrate"}, undoSteps),
		wantRunning: true,
	}, {
		name:        "timeout",
		fake:        &fakeQEMU{running: true, statuses: []string{"active"}},
		timeout:     300 * time.Millisecond,
		wantErr:     []string{"--timeout 300ms passed", "the VM runs again"},
		wantRunning: true,
	}, {
		name:    "a VM that was paused stays paused",
		fake:    &fakeQEMU{running: false, statuses: []string{"failed"}, failDesc: "boom"},
		wantErr: []string{"failed: boom", "did not run before and is left as it is"},
		wantLog: concat(migrateSteps, []string{"query-migrate", "--", "qmp_capabilities"}),
	}, {
		name:        "QEMU refuses to quit: the complete state goes",
		fake:        &fakeQEMU{running: true, statuses: []string{"completed"}, quitErr: "not now"},
		wantErr:     []string{"save failed at quit: qmp SOCKET: quit: not now", "no state file left; the VM runs again"},
		wantLog:     concat(migrateSteps, []string{"query-migrate", "quit"}, undoSteps),
		wantRunning: true,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t, tc.fake)
			state := filepath.Join(t.TempDir(), "vm.state")
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			var stdout, stderr strings.Builder
			err := save(context.Background(), saveConfig{qmp: f.socket, state: state, timeout: timeout, poll: 10 * time.Millisecond}, &stdout, &stderr)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if want := "vmctl: saved state: 10 bytes in " + state + " from the VM of " + f.socket + "; QEMU quit\n"; stdout.String() != want {
					t.Errorf("stdout %q, want %q", stdout.String(), want)
				}
			} else {
				if err == nil {
					t.Fatal("save succeeded")
				}
				t.Logf("error: %v", err)
				for _, w := range tc.wantErr {
					if w = strings.ReplaceAll(w, "SOCKET", f.socket); !strings.Contains(err.Error(), w) {
						t.Errorf("error %q\nwant %q in it", err, w)
					}
				}
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if tc.wantLog != nil && !slices.Equal(f.log, tc.wantLog) {
				t.Errorf("commands\n%q\nwant\n%q", f.log, tc.wantLog)
			}
			if tc.name == "timeout" && !slices.Contains(f.log, "migrate_cancel") {
				t.Errorf("no migrate_cancel after the timeout: %q", f.log)
			}
			if f.running != tc.wantRunning || f.quit != tc.wantState {
				t.Errorf("VM running=%v quit=%v, want %v %v", f.running, f.quit, tc.wantRunning, tc.wantState)
			}
			if _, err := os.Stat(state); (err == nil) != tc.wantState {
				t.Errorf("state file there: %v, want %v", err == nil, tc.wantState)
			}
			if _, err := os.Stat(state + ".tmp"); err == nil {
				t.Errorf("%s.tmp left", state)
			}
		})
	}
}

func TestSaveNoSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "absent.sock")
	err := save(context.Background(), saveConfig{qmp: sock, state: filepath.Join(t.TempDir(), "s"), timeout: time.Second}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "qmp "+sock+": dial unix") {
		t.Fatalf("err = %v, want one naming %s", err, sock)
	}
}

func concat(parts ...[]string) []string { return slices.Concat(parts...) }
