package vm

// These tests drive Run with a script in place of QEMU, to pin down how
// console output turns into a verdict. The real QEMU and kernel are
// exercised by the scenarios in tests/scenarios.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseMarker(t *testing.T) {
	for _, tc := range []struct {
		line string
		ok   bool
		kind string
		text string
	}{
		{"LUOTEST:PASS all good", true, "PASS", "all good"},
		{"LUOTEST:FAIL session \"x\": ENOENT\r", true, "FAIL", "session \"x\": ENOENT"},
		{"[    1.2] random: crng init doneLUOTEST:STAGE 2", true, "STAGE", "2"},
		{"LUOTEST:KEXEC", true, "KEXEC", ""},
		{"LUOTEST:lower case", false, "", ""},
		{"LUOTEST: space", false, "", ""},
		{"no marker here", false, "", ""},
	} {
		m, ok := ParseMarker(tc.line)
		if ok != tc.ok || m.Kind != tc.kind || m.Text != tc.text {
			t.Errorf("ParseMarker(%q) = %+v, %v; want %q %q %v", tc.line, m, ok, tc.kind, tc.text, tc.ok)
		}
	}
}

func fakeQEMU(t *testing.T, console string, sleep float64, exit int) Config {
	t.Helper()
	dir := t.TempDir()
	cons := filepath.Join(dir, "console")
	if err := os.WriteFile(cons, []byte(console), 0o644); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "qemu")
	body := fmt.Sprintf("#!/bin/sh\ncat %s\nsleep %g\nexit %d\n", cons, sleep, exit)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	kernel := filepath.Join(dir, "bzImage")
	os.WriteFile(kernel, nil, 0o644)
	return Config{QEMU: script, Kernel: kernel, Accel: "tcg", Timeout: 3 * time.Second, Log: t.Logf}
}

func TestRunVerdicts(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		console string
		sleep   float64
		exit    int
		pass    bool
		msg     string
		boots   int
	}{
		{"pass after kexec", "Linux version 7.3\nLUOTEST:STAGE 1\nLinux version 7.3\nLUOTEST:STAGE 2\nLUOTEST:PASS fine\n", 0, 0, true, "fine", 2},
		{"guest failure wins", "Linux version 7.3\nLUOTEST:FAIL token 7: ENOENT\nLUOTEST:PASS too late\n", 0, 0, false, "guest: token 7: ENOENT", 1},
		{"kernel panic", "Linux version 7.3\n[ 0.5] Kernel panic - not syncing: Attempted to kill init!\n", 0, 0, false, "kernel panic: [ 0.5] Kernel panic - not syncing: Attempted to kill init!", 1},
		{"ended without result", "Linux version 7.3\nsome line\n", 0, 0, false, `the VM ended without a result (last console line: "some line")`, 1},
		{"qemu error", "qemu: could not load kernel\n", 0, 1, false, "QEMU failed: exit status 1", 0},
		{"timeout", "Linux version 7.3\nLUOTEST:STAGE 1\n", 30, 0, false, "timed out after 3s", 1},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			res, err := Run(context.Background(), fakeQEMU(t, tc.console, tc.sleep, tc.exit))
			if err != nil {
				t.Fatal(err)
			}
			if res.Passed != tc.pass || !strings.HasPrefix(res.Message, tc.msg) {
				t.Errorf("Passed %v Message %q; want %v %q", res.Passed, res.Message, tc.pass, tc.msg)
			}
			if res.Boots != tc.boots {
				t.Errorf("Boots %d, want %d", res.Boots, tc.boots)
			}
			if tc.desc == "timeout" && (!res.TimedOut || res.Elapsed > 20*time.Second) {
				t.Errorf("TimedOut %v after %v", res.TimedOut, res.Elapsed)
			}
		})
	}
}

func TestRunMissingFiles(t *testing.T) {
	cfg := fakeQEMU(t, "", 0, 0)
	cfg.Initramfs = filepath.Join(t.TempDir(), "absent.cpio")
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "absent.cpio") {
		t.Fatalf("Run with a missing initramfs: %v", err)
	}
}

func TestArgs(t *testing.T) {
	args := strings.Join(Config{Kernel: "k", Initramfs: "i", Append: "liveupdate=on", Accel: "tcg"}.Args(), " ")
	for _, want := range []string{"-no-reboot", "-kernel k", "-initrd i", "accel=tcg", "console=ttyS0 panic=-1 loglevel=6 no_timer_check retain_initrd liveupdate=on", "-m 1024", "-smp 2"} {
		if !strings.Contains(args, want) {
			t.Errorf("QEMU args %q lack %q", args, want)
		}
	}
}

func FuzzParseMarker(f *testing.F) {
	for _, s := range []string{"LUOTEST:PASS ok", "x LUOTEST:STAGE 2\r\n", "LUOTEST:", "LUOTEST:a b", "LUOTEST:FAIL\x00", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		m, ok := ParseMarker(line)
		if !ok {
			if m != (Marker{}) {
				t.Fatalf("not a marker but %+v returned", m)
			}
			return
		}
		if !strings.Contains(line, MarkerPrefix+m.Kind) {
			t.Fatalf("kind %q not in %q", m.Kind, line)
		}
		if m.Kind == "" || strings.ToUpper(m.Kind) != m.Kind || strings.ContainsAny(m.Kind, " \r\n") {
			t.Fatalf("bad kind %q from %q", m.Kind, line)
		}
		if !strings.Contains(line, m.Text) || strings.HasSuffix(m.Text, "\n") || strings.HasSuffix(m.Text, "\r") {
			t.Fatalf("text %q from %q", m.Text, line)
		}
	})
}
