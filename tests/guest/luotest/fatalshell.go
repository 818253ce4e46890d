package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/luoinit/luoinit/carry"
	"github.com/luoinit/luoinit/luo"
	"github.com/luoinit/luoinit/manifest"
)

// fatalShellMain runs as /bin/sh in the initramfs of the missing-root
// scenario: luoinit.fatal=shell starts it when the root does not come.
// It plays the operator who looks at what was kept, and reports it as
// data for the host to judge:
//
//	LUOTEST:SHELL_STATE <the state file, one line>
//	LUOTEST:SHELL_SESSION workload=kvcache session=luoinit.kvcache fds=1/1 bytes=67108864
//	LUOTEST:SHELL_END sessions=N fds=M errors=K
//
// Then it exits, and luoinit reboots the machine.
func fatalShellMain() {
	state, err := os.ReadFile("/run/luoinit/state")
	if err != nil {
		fmt.Printf("\nLUOTEST:FAIL no state file: %v\n", err)
		return
	}
	fmt.Printf("\nLUOTEST:SHELL_STATE %s\n", strings.ReplaceAll(strings.TrimSpace(string(state)), "\n", " "))
	sessions, fds, errs := 0, 0, 0
	report := func(format string, args ...any) {
		errs++
		fmt.Printf("\nLUOTEST:SHELL_ERROR %s\n", fmt.Sprintf(format, args...))
	}
	defer func() { fmt.Printf("\nLUOTEST:SHELL_END sessions=%d fds=%d errors=%d\n", sessions, fds, errs) }()
	dev, err := luo.Open(luo.DefaultPath)
	if err != nil {
		report("%v", err)
		return
	}
	own, err := dev.RetrieveSession(carry.Session)
	if err != nil {
		report("%v", err)
		return
	}
	sessions++
	mf, err := own.RetrieveFD(carry.ManifestToken)
	if err != nil {
		report("%v", err)
		return
	}
	data, err := carry.ReadSealed(mf, manifest.MaxFileSize)
	if err != nil {
		report("%v", err)
		return
	}
	m, err := manifest.Parse(data)
	if err != nil {
		report("%v", err)
		return
	}
	for _, w := range m.Workloads {
		if w.FDSession == "" || len(w.FDs) == 0 {
			continue
		}
		s, err := dev.RetrieveSession(w.FDSession)
		if err != nil {
			report("workload %s: %v", w.Name, err)
			continue
		}
		sessions++
		got, bytes := 0, int64(0)
		for _, fd := range w.FDs {
			f, err := s.RetrieveFD(fd.Token)
			if err != nil {
				report("workload %s fd %s: %v", w.Name, fd.Name, err)
				continue
			}
			if st, err := f.Stat(); err == nil {
				bytes += st.Size()
			}
			got++
		}
		fds += got
		fmt.Printf("\nLUOTEST:SHELL_SESSION workload=%s session=%s fds=%d/%d bytes=%d\n", w.Name, w.FDSession, got, len(w.FDs), bytes)
	}
}
