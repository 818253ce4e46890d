package main

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseListenFDs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    listenFDs
		wantErr string
	}{
		{"none", nil, listenFDs{}, ""},
		{"one named", map[string]string{"LISTEN_FDS": "1", "LISTEN_FDNAMES": "guest-ram", "LISTEN_PID": "42"},
			listenFDs{[]int{3}, []string{"guest-ram"}}, ""},
		{"no LISTEN_PID is ours", map[string]string{"LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:b"},
			listenFDs{[]int{3, 4}, []string{"a", "b"}}, ""},
		{"names missing are unknown", map[string]string{"LISTEN_FDS": "3", "LISTEN_FDNAMES": "a"},
			listenFDs{[]int{3, 4, 5}, []string{"a", "unknown", "unknown"}}, ""},
		{"another process's", map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": "7"},
			listenFDs{}, "LISTEN_PID=7 is not vmctl's pid 42"},
		{"not a count", map[string]string{"LISTEN_FDS": "x"}, listenFDs{}, `LISTEN_FDS="x"`},
		{"negative", map[string]string{"LISTEN_FDS": "-1"}, listenFDs{}, "not a count"},
		{"more names than fds", map[string]string{"LISTEN_FDS": "1", "LISTEN_FDNAMES": "a:b"},
			listenFDs{}, "names 2 fds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseListenFDs(func(k string) string { return tc.env[k] }, 42)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("= %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestSubstitute(t *testing.T) {
	l := listenFDs{[]int{3, 4, 5}, []string{"guest-ram", "state", "state"}}
	for _, tc := range []struct {
		name     string
		argv     []string
		want     []string
		wantUsed []int
		wantErr  string
	}{
		{"nothing to do", []string{"qemu", "-m", "64"}, []string{"qemu", "-m", "64"}, nil, ""},
		{"inside an argument",
			[]string{"qemu", "-object", "memory-backend-file,id=ram,mem-path=/proc/self/fd/{fd:guest-ram},share=on"},
			[]string{"qemu", "-object", "memory-backend-file,id=ram,mem-path=/proc/self/fd/3,share=on"}, []int{3}, ""},
		{"twice in one", []string{"{fd:guest-ram}-{fd:guest-ram}"}, []string{"3-3"}, []int{3, 3}, ""},
		{"a whole argument", []string{"-add-fd", "fd={fd:guest-ram},set=1"}, []string{"-add-fd", "fd=3,set=1"}, []int{3}, ""},
		{"not passed", []string{"{fd:disk}"}, nil, nil, `fd "disk": not passed (LISTEN_FDNAMES=guest-ram:state:state)`},
		{"passed twice", []string{"{fd:state}"}, nil, nil, `fd "state": passed twice`},
		{"unclosed", []string{"x{fd:guest-ram"}, nil, nil, "without its }"},
		{"empty name", []string{"{fd:}"}, nil, nil, `fd "": not passed`},
		{"braces alone stay", []string{"{}", "{fd"}, []string{"{}", "{fd"}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, used, err := substitute(tc.argv, l)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) || !reflect.DeepEqual(used, tc.wantUsed) {
				t.Fatalf("= %q, %v, %v; want %q, %v", got, used, err, tc.want, tc.wantUsed)
			}
		})
	}
}

func TestPrepareRun(t *testing.T) {
	qemu := []string{"qemu-system-x86_64", "-object", "memory-backend-file,id=ram,mem-path=/proc/self/fd/{fd:guest-ram},share=on"}
	env := []string{"PATH=/usr/bin", "LISTEN_FDS=2", "LISTEN_FDNAMES=guest-ram:log", "LISTEN_PID=42", "HOME=/root"}
	for _, tc := range []struct {
		name        string
		fdNames     []string
		env         []string
		stateThere  bool
		wantInherit []int
		wantErr     string
	}{
		{"cold", nil, env, false, []int{3}, ""},
		{"restore", nil, env, true, []int{3}, ""},
		{"--fd-name inherits an fd argv does not name", []string{"log"}, env, false, []int{3, 4}, ""},
		{"--fd-name of an fd not passed", []string{"disk"}, env, true, nil, `--fd-name disk: fd "disk": not passed`},
		{"no fds passed", nil, []string{"PATH=/usr/bin"}, true, nil, `fd "guest-ram": not passed`},
		{"a comma in the state's path", nil, env, true, []int{3}, "comma"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if strings.Contains(tc.name, "comma") {
				dir = filepath.Join(dir, "a,b")
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			state := filepath.Join(dir, "vm.state")
			if tc.stateThere {
				if err := os.WriteFile(state, []byte("state"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var inherited []int
			p := process{environ: tc.env, pid: 42, inherit: func(fd int) error {
				inherited = append(inherited, fd)
				return nil
			}}
			argv, gotEnv, undo, err := prepareRun(runConfig{state: state, fdNames: tc.fdNames, argv: qemu}, p)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one with %q", err, tc.wantErr)
				}
				if _, err := os.Stat(state); tc.stateThere && err != nil {
					t.Errorf("a failed run took the state: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"qemu-system-x86_64", "-object", "memory-backend-file,id=ram,mem-path=/proc/self/fd/3,share=on"}
			if tc.stateThere {
				want = append(want, "-global", "migration.x-ignore-shared=on", "-global", "migration.mode=cpr-reboot",
					"-incoming", "file:"+state+".incoming")
			}
			if !reflect.DeepEqual(argv, want) {
				t.Errorf("argv %q, want %q", argv, want)
			}
			if want := []string{"PATH=/usr/bin", "HOME=/root"}; !reflect.DeepEqual(gotEnv, want) {
				t.Errorf("env %q, want %q", gotEnv, want)
			}
			if !reflect.DeepEqual(inherited, tc.wantInherit) {
				t.Errorf("inherited fds %v, want %v", inherited, tc.wantInherit)
			}
			if tc.stateThere {
				if _, err := os.Stat(state + ".incoming"); err != nil {
					t.Errorf("state not renamed: %v", err)
				}
				undo()
				if _, err := os.Stat(state); err != nil {
					t.Errorf("undo did not put the state back: %v", err)
				}
			}
		})
	}
}

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantErr string // "" for none
	}{
		{[]string{"run", "--state", "s", "--", "qemu", "-m", "64"}, ""},
		{[]string{"run", "--state", "s", "--fd-name", "a", "--fd-name", "b", "--", "qemu"}, ""},
		{[]string{"run", "--state", "s", "qemu", "-m", "64"}, "wants -- before"},
		{[]string{"run", "--", "qemu"}, "needs --state"},
		{[]string{"run", "--state", "s", "--"}, "no QEMU command line"},
		{[]string{"run", "--bogus"}, "flag provided but not defined"},
		{[]string{"save", "--qmp", "q", "--state", "s"}, ""},
		{[]string{"save", "--qmp", "q", "--state", "s", "--timeout", "1m"}, ""},
		{[]string{"save", "--state", "s"}, "needs --qmp"},
		{[]string{"save", "--qmp", "q", "--state", "s", "--timeout", "0s"}, "positive"},
		{[]string{"save", "--qmp", "q", "--state", "s", "extra"}, "no arguments"},
		{[]string{"launch"}, "unknown subcommand"},
		{nil, "no subcommand"},
	} {
		var err error
		switch {
		case len(tc.args) == 0:
			err = dispatch(nil, nil, nil)
		case tc.args[0] == "run":
			_, err = parseRun(tc.args[1:])
		case tc.args[0] == "save":
			_, err = parseSave(tc.args[1:])
		default:
			err = dispatch(tc.args, nil, nil)
		}
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%q: err = %v, want %q", tc.args, err, tc.wantErr)
		}
	}
	cfg, err := parseRun([]string{"--state", "s", "--fd-name", "a", "--", "qemu", "--", "-x"})
	if err != nil || !slices.Equal(cfg.argv, []string{"qemu", "--", "-x"}) || !slices.Equal(cfg.fdNames, []string{"a"}) {
		t.Errorf("parseRun kept %+v, %v", cfg, err)
	}
}

func TestHelp(t *testing.T) {
	var out, errOut strings.Builder
	for _, args := range [][]string{{"--help"}, {"run", "--help"}, {"save", "-h"}} {
		out.Reset()
		if rc := run(args, &out, &errOut); rc != 0 || !strings.Contains(out.String(), "vmctl save --qmp SOCKET") {
			t.Errorf("%q: exit %d, %q", args, rc, out.String())
		}
	}
	if rc := run([]string{"frobnicate"}, &out, &errOut); rc != 2 || !strings.Contains(errOut.String(), "--help") {
		t.Errorf("unknown subcommand: exit %d, %q", rc, errOut.String())
	}
}
