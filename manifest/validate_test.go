package manifest

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// A valid socket-mode workload: lines 2 to 6 of every input below.
const sockWorkload = `version = 1
[[workload]]
name = "kv"
argv = ["/bin/kv"]
handoff = "socket"
session = "luoinit.kv"
`

// The same in pidfd mode; session on line 7.
const pidfdWorkload = `version = 1
[[workload]]
name = "kv"
argv = ["/bin/kv"]
handoff = "pidfd"
pid = 42
session = "luoinit.kv"
`

// The same with handoff "fdstore".
var fdstoreWorkload = strings.Replace(sockWorkload, `"socket"`, `"fdstore"`, 1)

func withoutSession(s string) string {
	return strings.Replace(s, "session = \"luoinit.kv\"\n", "", 1)
}

// rejectCase is an input and the substrings its error must hold.
type rejectCase struct {
	name string
	in   string
	want []string
}

// Rejected in a config and in a manifest alike. Inputs are written for a
// manifest; for a config the session line is removed, which moves lines
// after it up by one: want uses %d for the line, given as [manifest, config].
var commonRejects = []struct {
	name  string
	in    string
	want  string
	lines [2]int // the line of the problem in the manifest, in the config
	refs  [2]int // the line it refers to, for %[2]d
}{
	{"syntax", sockWorkload + "argv = [\n", "%d: syntax error: ", [2]int{7, 6}, [2]int{}},
	{"syntax key", sockWorkload + "= 3\n", "%d: syntax error: ", [2]int{7, 6}, [2]int{}},
	{"duplicate key", sockWorkload + "name = \"again\"\n", "%d: syntax error: Key 'workload.name' has already been defined", [2]int{7, 6}, [2]int{}},
	{"unknown top key", "colour = 1\n" + sockWorkload, "%d: colour: unknown key", [2]int{1, 1}, [2]int{}},
	{"unknown workload key", sockWorkload + "colour = 1\n", "%d: workload[0].colour: unknown key", [2]int{7, 6}, [2]int{}},
	{"unknown key case", sockWorkload + "UID = 1\n", "%d: workload[0].UID: unknown key", [2]int{7, 6}, [2]int{}},
	{"unknown fd key", sockWorkload + "[[workload.fd]]\nname = \"a\"\ntoken = 1\ncolour = 4096\n", "%d: workload[0].fd[0].colour: unknown key", [2]int{10, 8}, [2]int{}},
	{"unknown subtable", sockWorkload + "[workload.extra]\nx = 1\n", "%d: workload[0].extra: unknown key", [2]int{7, 6}, [2]int{}},
	{"unknown quoted key", sockWorkload + "\"a.b\" = 1\n", `%d: workload[0]."a.b": unknown key`, [2]int{7, 6}, [2]int{}},
	{"type", sockWorkload + "uid = \"root\"\n", "%d: workload[0].uid: needs an integer, not a string", [2]int{7, 6}, [2]int{}},
	{"range", sockWorkload + "gid = -1\n", "%d: workload[0].gid: ", [2]int{7, 6}, [2]int{}},
	{"range uid", sockWorkload + "uid = 4294967296\n", "%d: workload[0].uid: ", [2]int{7, 6}, [2]int{}},
	{"duration", sockWorkload + "stop_timeout = \"soon\"\n", `%d: workload[0].stop_timeout: time: invalid duration "soon"`, [2]int{7, 6}, [2]int{}},
	{"duration number", sockWorkload + "stop_timeout = 5\n", `%d: workload[0].stop_timeout: needs a string, not an integer`, [2]int{7, 6}, [2]int{}},
	{"negative duration", sockWorkload + "stop_timeout = \"-1s\"\n", `%d: workload "kv": stop_timeout -1s is negative`, [2]int{7, 6}, [2]int{}},
	{"workload not a table", "version = 1\nworkload = [1]\n", "2: workload[0]: needs a table, not an integer", [2]int{2, 2}, [2]int{}},
	{"workload not an array", "version = 1\nworkload = 1\n", "2: workload: needs an array of tables", [2]int{2, 2}, [2]int{}},
	{"version newer", strings.Replace(sockWorkload, "version = 1", "version = 2", 1) + "future = true\n", "1: %snewer luoinit: version 2, this build understands 1", [2]int{1, 1}, [2]int{}},
	{"version zero", strings.Replace(sockWorkload, "version = 1", "version = 0", 1), "%d: version 0 is not valid: versions start at 1", [2]int{1, 1}, [2]int{}},
	{"version negative", strings.Replace(sockWorkload, "version = 1", "version = -3", 1), "%d: version -3 is not valid: versions start at 1", [2]int{1, 1}, [2]int{}},
	{"version missing", strings.Replace(sockWorkload, "version = 1", "", 1), ".toml: version is missing (this build writes version 1)", [2]int{}, [2]int{}},
	{"version type", strings.Replace(sockWorkload, "version = 1", "version = \"1\"", 1), "%d: version: needs an integer, not a string", [2]int{1, 1}, [2]int{}},
	{"name missing", strings.Replace(sockWorkload, "name = \"kv\"\n", "", 1), "%d: workload[0]: name is missing", [2]int{2, 2}, [2]int{}},
	{"name empty", strings.Replace(sockWorkload, `name = "kv"`, `name = ""`, 1), "%d: workload[0]: name is missing", [2]int{3, 3}, [2]int{}},
	{"name chars", strings.Replace(sockWorkload, `name = "kv"`, `name = "k/v"`, 1), `%d: workload[0]: workload name "k/v" contains '/': only ASCII letters, digits, '.', '_' and '-' are allowed`, [2]int{3, 3}, [2]int{}},
	{"name space", strings.Replace(sockWorkload, `name = "kv"`, `name = "k v"`, 1), `%d: workload[0]: workload name "k v" contains ' ': only ASCII letters`, [2]int{3, 3}, [2]int{}},
	{"name long", strings.Replace(sockWorkload, `name = "kv"`, `name = "`+strings.Repeat("n", 56)+`"`, 1), "%d: workload[0]: workload name \"" + strings.Repeat("n", 40) + "\"... is 56 bytes long (at most 55, so that its session name luoinit.<name> fits in 63)", [2]int{3, 3}, [2]int{}},
	{"duplicate workload", sockWorkload + strings.TrimPrefix(withoutSession(sockWorkload), "version = 1\n"), `%d: workload name "kv" is used twice (line 3)`, [2]int{8, 7}, [2]int{}},
	{"argv missing", strings.Replace(sockWorkload, "argv = [\"/bin/kv\"]\n", "", 1), `%d: workload "kv": argv is missing`, [2]int{2, 2}, [2]int{}},
	{"argv empty", strings.Replace(sockWorkload, `argv = ["/bin/kv"]`, `argv = []`, 1), `%d: workload "kv": argv is empty`, [2]int{4, 4}, [2]int{}},
	{"argv relative", strings.Replace(sockWorkload, `argv = ["/bin/kv"]`, `argv = ["kv", "-x"]`, 1), `%d: workload "kv": argv[0] "kv" is not an absolute path`, [2]int{4, 4}, [2]int{}},
	{"argv multiline", strings.Replace(sockWorkload, `argv = ["/bin/kv"]`, "argv = [\n  \"/bin/kv\",\n  \"nul\\u0000\",\n]", 1), `%d: workload "kv": argv[1] contains a NUL byte`, [2]int{6, 6}, [2]int{}},
	{"env without =", sockWorkload + "env = [\"A=1\", \"B\"]\n", `%d: workload "kv": env[1] "B" is not KEY=value`, [2]int{7, 6}, [2]int{}},
	{"env empty key", sockWorkload + "env = [\"=1\"]\n", `%d: workload "kv": env[0] "=1" is not KEY=value`, [2]int{7, 6}, [2]int{}},
	{"dir relative", sockWorkload + "dir = \"var/kv\"\n", `%d: workload "kv": dir "var/kv" is not an absolute path`, [2]int{7, 6}, [2]int{}},
	{"handoff missing", strings.Replace(sockWorkload, "handoff = \"socket\"\n", "", 1), `%d: workload "kv": handoff is missing: it must be one of "socket", "pidfd", "fdstore" or "none"`, [2]int{2, 2}, [2]int{}},
	{"handoff bad", strings.Replace(sockWorkload, `handoff = "socket"`, `handoff = "fork"`, 1), `%d: workload "kv": handoff "fork": it must be one of "socket", "pidfd", "fdstore" or "none"`, [2]int{5, 5}, [2]int{}},
	{"pidfd without pid", strings.Replace(pidfdWorkload, "pid = 42\n", "", 1), `%d: workload "kv": handoff "pidfd" needs pid or pidfile`, [2]int{5, 5}, [2]int{}},
	{"pid and pidfile", pidfdWorkload + "pidfile = \"/run/kv.pid\"\n", `%d: workload "kv": set pid or pidfile, not both`, [2]int{8, 7}, [2]int{}},
	{"pidfile relative", strings.Replace(pidfdWorkload, "pid = 42", `pidfile = "kv.pid"`, 1), `%d: workload "kv": pidfile "kv.pid" is not an absolute path`, [2]int{6, 6}, [2]int{}},
	{"pid negative", strings.Replace(pidfdWorkload, "pid = 42", "pid = -1", 1), `%d: workload "kv": pid -1 is not valid`, [2]int{6, 6}, [2]int{}},
	{"pidfd fd without number", pidfdWorkload + "[[workload.fd]]\nname = \"a\"\ntoken = 1\n", `%d: workload "kv" fd "a": handoff "pidfd" needs the fd's number`, [2]int{8, 7}, [2]int{}},
	{"pidfd fd number negative", pidfdWorkload + "[[workload.fd]]\nname = \"a\"\ntoken = 1\nnumber = -2\n", `%d: workload "kv" fd "a": number -2 is not a valid fd`, [2]int{11, 9}, [2]int{}},
	{"pidfd fd number twice", pidfdWorkload + "[[workload.fd]]\nname = \"a\"\ntoken = 1\nnumber = 3\n[[workload.fd]]\nname = \"b\"\ntoken = 2\nnumber = 3\n", `%[1]d: workload "kv" fd "b": number 3 already used by workload "kv" fd "a" (line %[2]d)`, [2]int{15, 12}, [2]int{11, 9}},
	{"socket fd with number", sockWorkload + "[[workload.fd]]\nname = \"a\"\ntoken = 1\nnumber = 3\n", `%d: workload "kv" fd "a": number is only for handoff "pidfd": in socket mode the workload sends its fds`, [2]int{10, 8}, [2]int{}},
	{"fd name missing", sockWorkload + "[[workload.fd]]\ntoken = 1\n", `%d: workload "kv" fd[0]: fd name is missing`, [2]int{7, 6}, [2]int{}},
	{"fd name twice", sockWorkload + "[[workload.fd]]\nname = \"a\"\ntoken = 1\n[[workload.fd]]\nname = \"a\"\ntoken = 2\n", `%[1]d: workload "kv": fd name "a" is used twice (line %[2]d)`, [2]int{11, 9}, [2]int{8, 7}},
	{"fd inline", sockWorkload + "fd = [{name = \"a\", token = 1}, {name = \"a\", token = 2}]\n", `%[1]d: workload "kv": fd name "a" is used twice (line %[1]d)`, [2]int{7, 6}, [2]int{}},
	{"fd size on socket", sockWorkload + "[[workload.fd]]\nname = \"a\"\ntoken = 1\nsize = \"64M\"\n", `%d: workload "kv" fd "a": size is only for handoff "fdstore"`, [2]int{10, 8}, [2]int{}},
	{"fd size unit", fdstoreWorkload + "[[workload.fd]]\nname = \"a\"\ntoken = 1\nsize = \"64Q\"\n", `%d: workload[0].fd[0].size: size "64Q": want a whole number of bytes with an optional unit`, [2]int{10, 8}, [2]int{}},
	{"fd size negative", fdstoreWorkload + "[[workload.fd]]\nname = \"a\"\ntoken = 1\nsize = \"-1\"\n", `%d: workload[0].fd[0].size: size "-1": want a whole number`, [2]int{10, 8}, [2]int{}},
	{"fd size overflow", fdstoreWorkload + "[[workload.fd]]\nname = \"a\"\ntoken = 1\nsize = \"9000000T\"\n", `%d: workload[0].fd[0].size: size "9000000T" is too large`, [2]int{10, 8}, [2]int{}},
	{"fd size zero", fdstoreWorkload + "[[workload.fd]]\nname = \"a\"\ntoken = 1\nsize = \"0\"\n", `%d: workload "kv" fd "a": size is 0: leave it out`, [2]int{10, 8}, [2]int{}},
	{"fd size too large", fdstoreWorkload + "[[workload.fd]]\nname = \"a\"\ntoken = 1\nsize = \"2T\"\n", `%d: workload "kv" fd "a": size 2199023255552: it must be 1 byte to 1TiB`, [2]int{10, 8}, [2]int{}},
	{"stop_command empty", sockWorkload + "stop_command = []\n", `%d: workload "kv": stop_command is empty`, [2]int{7, 6}, [2]int{}},
	{"stop_command relative", sockWorkload + "stop_command = [\"save\", \"--now\"]\n", `%d: workload "kv": stop_command[0] "save" is not an absolute path`, [2]int{7, 6}, [2]int{}},
	{"stop_command nul", sockWorkload + "stop_command = [\"/bin/save\", \"a\\u0000\"]\n", `%d: workload "kv": stop_command[1] contains a NUL byte`, [2]int{7, 6}, [2]int{}},
	{"stop", sockWorkload + "stop = \"kill\"\n", `%d: workload "kv": stop "kill": it must be "term" or "sigstop"`, [2]int{7, 6}, [2]int{}},
	{"restart", sockWorkload + "restart = \"always\"\n", `%d: workload "kv": restart "always": it must be "never" or "on-failure"`, [2]int{7, 6}, [2]int{}},
}

func TestRejectCommon(t *testing.T) {
	for _, tc := range commonRejects {
		for k, kind := range []string{"manifest", "config"} {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				in := tc.in
				if kind == "config" {
					in = withoutSession(in)
					in = strings.ReplaceAll(in, "token = 1\n", "")
					in = strings.ReplaceAll(in, "token = 2\n", "")
				}
				want := tc.want
				switch {
				case strings.Contains(want, "%s"):
					want = fmt.Sprintf(want, map[string]string{"manifest": "written by a ", "config": "made for a "}[kind])
				case strings.Contains(want, "%[2]d"):
					want = fmt.Sprintf(want, tc.lines[k], tc.refs[k])
				case strings.Contains(want, "%d"), strings.Contains(want, "%[1]d"):
					want = fmt.Sprintf(want, tc.lines[k])
				}
				want = kind + ".toml:" + strings.TrimPrefix(want, ".toml:")
				if strings.Contains(tc.want, ".toml: ") {
					want = kind + tc.want
				}
				var err error
				if kind == "config" {
					_, err = ParseConfig([]byte(in))
				} else {
					_, err = Parse([]byte(in))
				}
				assertProblem(t, in, err, want)
			})
		}
	}
}

func assertProblem(t *testing.T, in string, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted:\n%s", in)
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if strings.Contains(line, want) {
			return
		}
	}
	t.Errorf("error lacks %q:\n%v\ninput:\n%s", want, err, in)
}

func TestRejectConfigOnly(t *testing.T) {
	cfg := withoutSession(sockWorkload) // workload on lines 2-5
	for _, tc := range []rejectCase{
		{"session", cfg + "session = \"luoinit.kv\"\n", []string{"config.toml:6: workload \"kv\": a config cannot set session; the manifest gets it from prepare"}},
		{"session empty", cfg + "session = \"\"\n", []string{"config.toml:6: workload \"kv\": a config cannot set session;"}},
		{"token", cfg + "[[workload.fd]]\nname = \"a\"\ntoken = 3\n", []string{"config.toml:8: workload \"kv\" fd \"a\": a config cannot set token; the manifest gets it from prepare"}},
		{"token zero", cfg + "[[workload.fd]]\nname = \"a\"\ntoken = 0\n", []string{"config.toml:8: workload \"kv\" fd \"a\": a config cannot set token"}},
		{"kind", cfg + "[[workload.fd]]\nname = \"a\"\nkind = \"memfd\"\n", []string{"config.toml:8: workload \"kv\" fd \"a\": a config cannot set kind"}},
		{"dropped", cfg + "[[workload.fd]]\nname = \"a\"\ndropped = false\n", []string{"config.toml:8: workload \"kv\" fd \"a\": a config cannot set dropped"}},
		{"drop_reason", cfg + "[[workload.fd]]\nname = \"a\"\ndrop_reason = \"x\"\n", []string{"config.toml:8: workload \"kv\" fd \"a\": a config cannot set drop_reason"}},
		{"owned session", cfg + "[[workload.owned_session]]\nname = \"vm\"\nvia = \"proc\"\n", []string{"config.toml:6: workload \"kv\": a config cannot set owned_session; the manifest gets it from prepare"}},
		{"retrieve with none", strings.Replace(cfg, `handoff = "socket"`, `handoff = "none"`, 1) + "sessions = \"retrieve\"\n", []string{`config.toml:6: workload "kv": sessions "retrieve" needs a handoff that hands fds over ("socket", "pidfd" or "fdstore")`}},
		{"manifest keys", "generation = 1\nkernel_release = \"6.19\"\n[timing]\n" + cfg, []string{
			"config.toml:1: generation: unknown key",
			"config.toml:2: kernel_release: unknown key",
			"config.toml:3: timing: unknown key",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.in))
			for _, want := range tc.want {
				assertProblem(t, tc.in, err, want)
			}
		})
	}
}

func TestRejectManifestOnly(t *testing.T) {
	m := sockWorkload // session on line 6
	for _, tc := range []rejectCase{
		{"session missing", withoutSession(m), []string{"manifest.toml:2: workload \"kv\": session is missing"}},
		{"session empty", strings.Replace(m, `session = "luoinit.kv"`, `session = ""`, 1), []string{"manifest.toml:6: workload \"kv\": session is missing"}},
		{"session long", strings.Replace(m, `session = "luoinit.kv"`, `session = "`+strings.Repeat("s", 64)+`"`, 1), []string{"manifest.toml:6: workload \"kv\": session \"" + strings.Repeat("s", 64) + "\": a workload's session must be \"luoinit.kv\""}},
		{"session NUL", strings.Replace(m, `session = "luoinit.kv"`, `session = "luoinit.\u0000"`, 1), []string{"manifest.toml:6: workload \"kv\": session \"luoinit.\\x00\": a workload's session must be \"luoinit.kv\""}},
		{"session of another", m + "[[workload]]\nname = \"kv2\"\nargv = [\"/bin/kv\"]\nhandoff = \"socket\"\nsession = \"luoinit.kv\"\n", []string{"manifest.toml:11: workload \"kv2\": session \"luoinit.kv\": a workload's session must be \"luoinit.kv2\""}},
		{"session of the freeze record", strings.Replace(m, `session = "luoinit.kv"`, `session = "luoinit"`, 1), []string{"manifest.toml:6: workload \"kv\": session \"luoinit\": a workload's session must be \"luoinit.kv\""}},
		{"generation zero", "generation = 0\n" + m, []string{"manifest.toml:1: generation 0 is not valid: the first live update is generation 1"}},
		{"generation missing", m, []string{"manifest.toml: generation is missing (the first live update is generation 1)"}},
		{"kind teapot", m + "[[workload.fd]]\nname = \"a\"\ntoken = 1\nkind = \"teapot\"\n", []string{`manifest.toml:10: workload "kv" fd "a": kind "teapot": it must be one of "memfd", "pipe", "socket", "file", "unknown" or "anon:<name>"`}},
		{"kind anon bad", m + "[[workload.fd]]\nname = \"a\"\ntoken = 1\nkind = \"anon:a b\"\n", []string{`manifest.toml:10: workload "kv" fd "a": kind "anon:a b": it must be one of`}},
		{"token missing", m + "[[workload.fd]]\nname = \"a\"\n", []string{"manifest.toml:7: workload \"kv\" fd \"a\": token is missing (only a dropped fd has none)"}},
		{"token zero", m + "[[workload.fd]]\nname = \"a\"\ntoken = 0\n", []string{"manifest.toml:9: workload \"kv\" fd \"a\": token is missing"}},
		{"token twice", m + "[[workload.fd]]\nname = \"a\"\ntoken = 1\n[[workload.fd]]\nname = \"b\"\ntoken = 1\n", []string{"manifest.toml:12: workload \"kv\" fd \"b\": token 1 already used by fd \"a\" in session \"luoinit.kv\" (line 9)"}},
		{"token negative", m + "[[workload.fd]]\nname = \"a\"\ntoken = -1\n", []string{"manifest.toml:9: workload[0].fd[0].token: -1 is out of range: it must be 0 to 18446744073709551615"}},
		{"dropped not optional", m + "[[workload.fd]]\nname = \"a\"\ndropped = true\n", []string{"manifest.toml:9: workload \"kv\" fd \"a\": dropped, but the fd is not optional"}},
		{"dropped with token", m + "[[workload.fd]]\nname = \"a\"\noptional = true\ndropped = true\ntoken = 4\n", []string{"manifest.toml:11: workload \"kv\" fd \"a\": token 4 on a dropped fd"}},
		{"drop_reason not dropped", m + "[[workload.fd]]\nname = \"a\"\ntoken = 1\ndrop_reason = \"EBUSY\"\n", []string{"manifest.toml:10: workload \"kv\" fd \"a\": drop_reason on an fd that is not dropped"}},
		{"written local", "written = 2025-06-01T12:00:00\n" + m, []string{"manifest.toml:1: written: needs a date-time with a UTC offset"}},
		{"written date", "written = 2025-06-01\n" + m, []string{"manifest.toml:1: written: needs a date-time with a UTC offset"}},
		{"written string", "written = \"yesterday\"\n" + m, []string{"manifest.toml:1: written: needs a date-time like 2025-01-02T03:04:05Z, not a string"}},
		{"written out of range", "written = 0000-01-01T00:00:00+01:00\n" + m, []string{"manifest.toml:1: written: date-time out of range in UTC"}},
		{"generation negative", "generation = -1\n" + m, []string{"manifest.toml:1: generation: -1 is out of range: it must be 0 to 18446744073709551615"}},
		{"timing unknown", m + "[timing.reboot]\nmonotonic_ns = 5\nboottime_ns = 9\n", []string{"manifest.toml:9: timing.reboot.boottime_ns: unknown key"}},
		{"timing negative", "[timing]\nreboot = { monotonic_ns = -5 }\n" + m, []string{"manifest.toml:2: timing: reboot.monotonic_ns -5 is negative"}},
		{"timing order", "[timing.prepare_start]\nmonotonic_ns = 100\n[timing.reboot]\nmonotonic_ns = 50\n[timing.preserved]\nmonotonic_ns = 20\n[timing.first_stopped]\nmonotonic_ns = 500\n" + m, []string{
			"manifest.toml:4: timing: reboot is before prepare_start",
			"manifest.toml:6: timing: preserved is before prepare_start",
			"manifest.toml:8: timing: first_stopped is after reboot",
		}},
		{"session with handoff none", strings.Replace(m, `handoff = "socket"`, `handoff = "none"`, 1), []string{`manifest.toml:6: workload "kv": handoff "none" has no session of luoinit's, but session "luoinit.kv" is set`}},
		{"owned reserved", m + "[[workload.owned_session]]\nname = \"luoinit.x\"\nvia = \"proc\"\n", []string{`manifest.toml:8: workload "kv": owned session "luoinit.x" is in luoinit's own namespace`}},
		{"owned reserved bare", m + "[[workload.owned_session]]\nname = \"luoinit\"\nvia = \"proc\"\n", []string{`manifest.toml:8: workload "kv": owned session "luoinit" is in luoinit's own namespace`}},
		{"owned empty", m + "[[workload.owned_session]]\nname = \"\"\nvia = \"proc\"\n", []string{`manifest.toml:8: workload "kv": owned session name is empty`}},
		{"owned long", m + "[[workload.owned_session]]\nname = \"" + strings.Repeat("s", 64) + "\"\nvia = \"push\"\n", []string{`is 64 bytes, at most 63 are allowed`}},
		{"owned NUL", m + "[[workload.owned_session]]\nname = \"a\\u0000b\"\nvia = \"push\"\n", []string{`manifest.toml:8: workload "kv": owned session name "a\x00b" contains a NUL byte`}},
		{"owned via", m + "[[workload.owned_session]]\nname = \"vm\"\nvia = \"magic\"\n", []string{`manifest.toml:9: workload "kv": owned session "vm": via "magic": it must be one of "push", "fdstore" or "proc"`}},
		{"owned twice", m + "[[workload.owned_session]]\nname = \"vm\"\nvia = \"proc\"\n[[workload.owned_session]]\nname = \"vm\"\nvia = \"push\"\n", []string{`manifest.toml:11: workload "kv": owned session "vm" is already in the manifest (line 8)`}},
		{"owned clashes with a workload session", m + "[[workload.owned_session]]\nname = \"luoinit.kv\"\nvia = \"proc\"\n", []string{`owned session "luoinit.kv" is in luoinit's own namespace`}},
		{"owned retrieve slash", m + "sessions = \"retrieve\"\n[[workload.owned_session]]\nname = \"a/b\"\nvia = \"proc\"\n", []string{`manifest.toml:9: workload "kv": owned session "a/b" cannot be handed over by name`}},
		{"owned retrieve fd name", m + "sessions = \"retrieve\"\n[[workload.fd]]\nname = \"vm\"\ntoken = 1\n[[workload.owned_session]]\nname = \"vm\"\nvia = \"proc\"\n", []string{`manifest.toml:12: workload "kv": owned session "vm" has the name of the workload's fd "vm"`}},
		{"timing local", "[timing.reboot]\nmonotonic_ns = 5\nrealtime = 12:00:00\n" + m, []string{"manifest.toml:3: timing.reboot.realtime: needs a date-time with a UTC offset"}},
		{"next kernel compatible", m + "[next_kernel]\nrelease = \"7.3.4\"\ncompatible = [\"kho-v4\", \"luo5\", \"LUO-v5\", \"luo-v\"]\n", []string{
			`manifest.toml:9: next_kernel: next_kernel.compatible "luo5" is not a compatible string like "luo-v5"`,
			`manifest.toml:9: next_kernel: next_kernel.compatible "LUO-v5" is not`,
			`manifest.toml:9: next_kernel: next_kernel.compatible "luo-v" is not`,
		}},
		{"next kernel two versions", m + "[next_kernel]\ncompatible = [\"luo-v5\", \"kho-v4\", \"luo-v6\"]\n", []string{
			`manifest.toml:8: next_kernel: next_kernel.compatible has two versions of luo: "luo-v5" and "luo-v6"`,
		}},
		{"next kernel too many", m + "[next_kernel]\ncompatible = [" + strings.Repeat(`"a-v1", `, 33) + "]\n", []string{
			`manifest.toml:8: next_kernel: next_kernel.compatible has 33 entries, at most 32`,
		}},
		{"next kernel release", m + "[next_kernel]\nrelease = \"7.3.4 luo\"\n", []string{
			`manifest.toml:8: next_kernel: next_kernel.release "7.3.4 luo" contains a space or a control character`,
		}},
		{"next kernel unknown key", m + "[next_kernel]\nversion = \"7\"\n", []string{"manifest.toml:8: next_kernel.version: unknown key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			for _, want := range tc.want {
				assertProblem(t, tc.in, err, want)
			}
		})
	}
}

// The example of the task: a duplicate token deep in a file.
func TestDuplicateTokenLine(t *testing.T) {
	in := `version = 1
generation = 1

[[workload]]
name = "web"
argv = ["/bin/web"]
handoff = "socket"
session = "luoinit.web"

[[workload.fd]]
name = "cache"
token = 3

[[workload]]
name = "kv"
argv = ["/bin/kv"]
handoff = "socket"
session = "luoinit.kv"

[[workload.fd]]
name = "log"
token = 3  # same token, other fd

[[workload.fd]]
name = "arena"
kind = "memfd"
token = 3
`
	_, err := Parse([]byte(in))
	want := `manifest.toml:27: workload "kv" fd "arena": token 3 already used by fd "log" in session "luoinit.kv" (line 22)`
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

// Every problem is reported, one a line, in the order of the file.
func TestAllProblems(t *testing.T) {
	in := `version = 1
[[workload]]
name = "a b"
argv = ["rel"]
uid = "x"
handoff = "pidfd"
pid = 1
colour = "red"
[[workload.fd]]
name = "m"
[[workload]]
name = "ok"
argv = ["/bin/ok"]
env = ["NOEQUALS"]
handoff = "socket"
[[workload.fd]]
name = "m"
number = 4
token = 7
`
	_, err := ParseConfig([]byte(in))
	want := []string{
		`config.toml:3: workload[0]: workload name "a b" contains ' ': only ASCII letters, digits, '.', '_' and '-' are allowed`,
		`config.toml:4: workload[0]: argv[0] "rel" is not an absolute path`,
		`config.toml:5: workload[0].uid: needs an integer, not a string`,
		`config.toml:8: workload[0].colour: unknown key`,
		`config.toml:9: workload[0] fd "m": handoff "pidfd" needs the fd's number`,
		`config.toml:14: workload "ok": env[0] "NOEQUALS" is not KEY=value`,
		`config.toml:18: workload "ok" fd "m": number is only for handoff "pidfd": in socket mode the workload sends its fds`,
		`config.toml:19: workload "ok" fd "m": a config cannot set token; the manifest gets it from prepare`,
	}
	if err == nil {
		t.Fatal("accepted")
	}
	if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Validate without a file names the field path instead of a line.
func TestValidatePaths(t *testing.T) {
	m := fullManifest()
	m.Workloads[0].FDs[1].Token = 1
	m.Workloads[1].Argv = nil
	m.Workloads[2].FDSession = m.Workloads[0].FDSession
	m.Workloads[2].PID = 1 << 32
	want := []string{
		`workload[0].fd[1].token: workload "kv" fd "log": token 1 already used by fd "arena" in session "luoinit.kv" (workload[0].fd[0].token)`,
		`workload[1].argv: workload "cache": argv is missing`,
		`workload[2].pid: workload "bare": pid 4294967296 is not valid: pids are 1 to 4194304`,
		`workload[2].pidfile: workload "bare": set pid or pidfile, not both`,
		`workload[2].session: workload "bare": session "luoinit.kv": a workload's session must be "luoinit.bare"`,
	}
	err := m.Validate()
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}

	c := &Config{Version: 1, Workloads: []Workload{{Name: "x", Argv: []string{"/x"}, Handoff: "socket", FDs: []FD{{Name: "a", Kind: "memfd"}}}}}
	if err := c.Validate(); err == nil || err.Error() != `workload[0].fd[0].kind: workload "x" fd "a": a config cannot set kind; the manifest gets it from prepare` {
		t.Errorf("config: %v", err)
	}
	c.Workloads[0].FDs[0].Kind = ""
	if err := c.Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
	c.Version = 7
	if err := c.Validate(); err == nil || err.Error() != "version: made for a newer luoinit: version 7, this build understands 1" {
		t.Errorf("newer config: %v", err)
	}
}

// A value that does not decode is reported once, not again as missing.
func TestTypeErrorOnly(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{strings.Replace(withoutSession(sockWorkload), `handoff = "socket"`, "handoff = 5", 1), "config.toml:5: workload[0].handoff: needs a string, not an integer"},
		{strings.Replace(withoutSession(pidfdWorkload), "pid = 42", `pid = "42"`, 1), "config.toml:6: workload[0].pid: needs an integer, not a string"},
		{strings.Replace(withoutSession(sockWorkload), `argv = ["/bin/kv"]`, `argv = "/bin/kv"`, 1), "config.toml:4: workload[0].argv: needs an array of strings, not a string"},
		{strings.Replace(withoutSession(sockWorkload), `name = "kv"`, `name = ["kv"]`, 1), "config.toml:3: workload[0].name: needs a string, not an array"},
		{strings.Replace(withoutSession(sockWorkload), `argv = ["/bin/kv"]`, `argv = ["/bin/kv", 3]`, 1), "config.toml:4: workload[0].argv[1]: needs a string, not an integer"},
		{"version = 1\nworkload = {a = 1}\n", "config.toml:2: workload: needs an array of tables, not a table"},
	} {
		_, err := ParseConfig([]byte(tc.in))
		if err == nil || err.Error() != tc.want {
			t.Errorf("got  %v\nwant %s\ninput:\n%s", err, tc.want, tc.in)
		}
	}
}

// A newer version is the only problem reported: the rest of the file may
// mean something this build does not know.
func TestNewerVersionOnly(t *testing.T) {
	in := "version = 2\ncolour = 1\n[[workload]]\nname = \"a b\"\n"
	_, err := Parse([]byte(in))
	if want := "manifest.toml:1: written by a newer luoinit: version 2, this build understands 1"; err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

func TestErrorsUnwrap(t *testing.T) {
	_, err := Parse([]byte("version = 1\nx = [\n"))
	var pe toml.ParseError
	if !errors.As(err, &pe) || pe.Position.Line != 2 {
		t.Errorf("syntax error %v does not wrap a toml.ParseError of line 2", err)
	}
	_, err = ParseConfig([]byte(withoutSession(sockWorkload) + "stop_timeout = \"x\"\n"))
	if !errors.As(err, &pe) {
		t.Errorf("duration error %v does not wrap the decoder's error", err)
	}
}

func TestAccept(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
	}{
		{"empty workloads", "version = 1\n"},
		{"minimal socket", withoutSession(sockWorkload)},
		{"pidfd with pidfile", strings.Replace(withoutSession(pidfdWorkload), "pid = 42", `pidfile = "/run/kv.pid"`, 1) + "[[workload.fd]]\nname = \"a\"\nnumber = 0\n"},
		{"all fields", withoutSession(sockWorkload) + `env = ["A=1", "B=", "C==x"]
dir = "/"
uid = 4294967294
gid = 0
stop = "sigstop"
stop_timeout = "1m30s"
restart = "never"
[[workload.fd]]
name = "a"
optional = true
`},
		{"quoted keys and comments", "\"version\" = 1 # the format\n[[ workload ]]\n'name' = \"kv\"\nargv = [ # args\n  \"/bin/kv\", # the program\n]\nhandoff = \"socket\"\n"},
		{"inline", "version = 1\nworkload = [{ name = \"kv\", argv = [\"/bin/kv\"], handoff = \"socket\", fd = [{ name = \"a\" }] }]\n"},
		{"none with sessions leave", strings.Replace(withoutSession(sockWorkload), `handoff = "socket"`, `handoff = "none"`, 1) + "sessions = \"leave\"\n"},
		{"socket with sessions retrieve", withoutSession(sockWorkload) + "sessions = \"retrieve\"\n"},
		{"longest name", strings.Replace(withoutSession(sockWorkload), `"kv"`, `"`+strings.Repeat("k", 55)+`"`, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.in))
			if err != nil {
				t.Fatalf("rejected: %v\n%s", err, tc.in)
			}
			m := c.NewManifest()
			for i := range m.Workloads {
				for j := range m.Workloads[i].FDs {
					m.Workloads[i].FDs[j].Token = uint64(j + 1)
				}
			}
			if _, err := m.Marshal(); err != nil {
				t.Errorf("its manifest: %v", err)
			}
		})
	}
}

// TestIsCompatible: the written-out check accepts exactly what the
// pattern it documents accepts.
func TestIsCompatible(t *testing.T) {
	re := regexp.MustCompile(`^[a-z][a-z0-9_-]{0,46}-v[0-9]{1,9}$`)
	long := strings.Repeat("a", 47)
	for _, s := range []string{
		"luo-v5", "kho-v4", "memfd-v1", "reserve-mem-v1", "a-v0", "x_y-9-v123456789",
		"luo5", "LUO-v5", "luo-v", "-v5", "luo-v1234567890", "luo-v5 ", "luo-v-v5", "a-vb-v1",
		"1uo-v5", "lu.o-v5", "luo-v5a", "", "-v", "a-v", long + "-v1", long[:46] + "-v1", "é-v1", "a\x00-v1",
	} {
		if got, want := isCompatible(s), re.MatchString(s); got != want {
			t.Errorf("isCompatible(%q) = %v, the pattern says %v", s, got, want)
		}
	}
}

func FuzzIsCompatible(f *testing.F) {
	re := regexp.MustCompile(`^[a-z][a-z0-9_-]{0,46}-v[0-9]{1,9}$`)
	for _, s := range []string{"luo-v5", "a-vb-v1", "luo-v", "x-v1234567890"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isCompatible(s), re.MatchString(s); got != want {
			t.Fatalf("isCompatible(%q) = %v, the pattern says %v", s, got, want)
		}
	})
}
