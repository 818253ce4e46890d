// Command luotest is the PID 1 of the luo VM scenarios. The scenario comes
// from luotest.scenario= on the kernel command line and the stage from
// luotest.stage= (1 before the kexec, 2 after it).
package main

import (
	"os"

	"github.com/luoinit/luoinit/tests/vm/guest"
)

var scenarios = map[string]map[string]func() error{
	"proof":    {"1": proofBefore, "2": proofAfter},
	"negative": {"1": negativeBefore, "2": negativeAfter},
	"prepare":  {"1": prepareBefore, "2": prepareAfter},
	"cancel":   {"1": cancelScenario},
	"refused":  {"1": refusedScenario},
	"restore":  {"1": restoreBefore},
	"network":  {"1": networkBefore},
	// tests/scenarios/fault_test.go
	"faultprep":    {"1": faultPrepare},
	"faultrestore": {"1": faultRestoreBefore},
}

func main() {
	if os.Args[0] == "/bin/sh" {
		fatalShellMain()
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "workload" {
		workloadMain(os.Args[2:])
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "manifestfilter" {
		manifestFilterMain()
		return
	}
	defer guest.Recover()
	guest.Setup()
	name, stage := guest.Flag("luotest.scenario"), guest.Stage()
	guest.Mark("STAGE", "%s", stage)
	guest.Info("scenario %s stage %s, %v after boot", name, stage, guest.BootTime())
	sc, ok := scenarios[name]
	if !ok {
		guest.Fail("unknown scenario %q", name)
	}
	run, ok := sc[stage]
	if !ok {
		guest.Fail("scenario %s has no stage %q", name, stage)
	}
	if err := run(); err != nil {
		guest.Fail("scenario %s stage %s: %v", name, stage, err)
	}
	guest.Fail("scenario %s stage %s returned without a verdict", name, stage)
}
