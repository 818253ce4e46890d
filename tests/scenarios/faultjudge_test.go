package scenarios

import (
	"slices"
	"strings"
	"testing"
)

// TestJudgeFault: the host's judge of TestFaultPrepare (judgeFault and
// reportData) against reports made up here, no VM: a report that meets
// the defined outcome passes, and each way of missing it is named.
func TestJudgeFault(t *testing.T) {
	var freeze prepFault
	for _, f := range prepareFaults {
		if f.name == "kill-during-freeze" {
			freeze = f
		}
	}
	sessions := "luoinit,luoinit.holder,luoinit.kv,luoinit.stubborn,luoinit.user"
	good := `exit=137 loaded_after_kill=1 procs=holder:ended,kv:ended,stubborn:S device=free sessions_free=` + sessions + ` sessions_left="" kexec_loaded=1`
	console := []string{"luoinit: prepare: phase frozen: stopping 3 workloads"}
	cases := []struct {
		name, report string
		console      []string
		want         string // in an error judgeFault must return; "" for none
	}{
		{"meets the outcome", good, console, ""},
		{"prepare exited", strings.Replace(good, "exit=137", "exit=1", 1), console, `exit="1", want "137"`},
		{"image unloaded", strings.Replace(good, "kexec_loaded=1", "kexec_loaded=0", 1), console, "kexec_loaded"},
		{"a session left", strings.Replace(good, `sessions_left=""`, `sessions_left="luoinit.kv(EEXIST)"`, 1), console, "sessions left: luoinit.kv(EEXIST)"},
		{"a session never checked", strings.Replace(good, ",luoinit.stubborn", "", 1), console, "session luoinit.stubborn was not free"},
		{"the survivor ended", strings.Replace(good, "stubborn:S", "stubborn:ended", 1), console, "process stubborn is ended, want running"},
		{"the survivor stopped", strings.Replace(good, "stubborn:S", "stubborn:T", 1), console, "process stubborn is T"},
		{"a workload not stopped", strings.Replace(good, "kv:ended", "kv:S", 1), console, "process kv is S, want ended"},
		{"a workload not reported", strings.Replace(good, "kv:ended,", "", 1), console, "process kv not reported"},
		{"the device held", strings.Replace(good, "device=free", `device="open /dev/liveupdate: EBUSY"`, 1), console, "/dev/liveupdate: open /dev/liveupdate: EBUSY"},
		{"its console silent", good, nil, "no console lines"},
		{"the freeze never said", good, []string{"luoinit: prepare: phase prepared"}, `lack "phase frozen"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := reportData(tc.report)
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, n := range strings.Split(sessions, ",") {
				if n != "luoinit.stubborn" { // the fault adds it
					s = append(s, n)
				}
			}
			errs := judgeFault(freeze, d, tc.console, &s)
			switch {
			case tc.want == "" && len(errs) != 0:
				t.Fatalf("judged wrong: %q", errs)
			case tc.want != "" && !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tc.want) }):
				t.Fatalf("errors %q, want one saying %q", errs, tc.want)
			}
		})
	}
}

// TestReportData: the FAULT report's words, quoted values and all.
func TestReportData(t *testing.T) {
	cases := []struct {
		in   string
		want map[string]string
		bad  bool
	}{
		{`exit=0 took=1.2s`, map[string]string{"exit": "0", "took": "1.2s"}, false},
		{`last="luoinit: prepare: test hook: stopping at step collect (pid 9)" exit=137`, map[string]string{"last": "luoinit: prepare: test hook: stopping at step collect (pid 9)", "exit": "137"}, false},
		{`sessions_left="" kexec_loaded=0`, map[string]string{"sessions_left": "", "kexec_loaded": "0"}, false},
		{`exit`, nil, true},
		{`last="unterminated exit=1`, nil, true},
	}
	for _, tc := range cases {
		got, err := reportData(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("reportData(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("reportData(%q) = %v, %v, want %v", tc.in, got, err, tc.want)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("reportData(%q)[%s] = %q, want %q", tc.in, k, got[k], v)
			}
		}
	}
}
