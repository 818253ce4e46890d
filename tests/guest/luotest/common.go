package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/wellknown"
	"golang.org/x/sys/unix"
)

// Helpers of the luotest workloads that run under luoinit as PID 1.

// vmEnd reports and asks PID 1 to reboot (SIGINT), which ends QEMU.
func vmEnd(kind, msg string) {
	fmt.Printf("\nLUOTEST:%s %s\n", kind, msg)
	unix.Kill(1, unix.SIGINT)
	time.Sleep(time.Hour)
}

// takeHandoff takes the (here empty) handoff luoinit offers every workload.
func takeHandoff(name string) {
	if _, ok := os.LookupEnv(wellknown.EnvHandoffFD); ok {
		if _, err := handoff.Receive(name, 30*time.Second); err != nil {
			vmEnd("FAIL", name+": "+err.Error())
		}
	}
}

// waitState waits until luoinit's state file exists and ok accepts it, and
// returns it.
func waitState(what string, ok func(state string) bool) string {
	for i := 0; i < 1200; i++ {
		b, err := os.ReadFile("/run/luoinit/state")
		if err == nil && ok(string(b)) {
			return string(b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile("/run/luoinit/state")
	vmEnd("FAIL", fmt.Sprintf("luoinit's state never became %s: %q", what, b))
	return ""
}

func stateIs(s string) func(string) bool {
	return func(state string) bool { return strings.Contains(state, "state="+s+"\n") }
}

// waitFile waits up to a minute for p to exist.
func waitFile(p string) bool {
	for i := 0; i < 1200; i++ {
		if _, err := os.Stat(p); err == nil {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// makeMemfds creates and fills a memfd per spec, named prefix+spec name.
func makeMemfds(prefix string, specs []memSpec) ([]handoff.File, error) {
	var files []handoff.File
	for _, sp := range specs {
		f, err := memfd(prefix+sp.name, 0)
		if err != nil {
			return nil, err
		}
		if err := fillPattern(f, sp.size, sp.seed); err != nil {
			return nil, err
		}
		files = append(files, handoff.File{Name: sp.name, File: f})
	}
	return files, nil
}

// push waits for prepare's socket and pushes files, reporting the ACK.
func push(name, socket string, files []handoff.File) {
	waitFile(socket)
	if err := handoff.Push(socket, name, files, 60*time.Second); err != nil {
		fmt.Printf("\nLUOTEST:WORKLOAD_ACK %s error: %v\n", name, err)
	} else {
		fmt.Printf("\nLUOTEST:WORKLOAD_ACK %s ok\n", name)
	}
}

// reportStatus prints `luoinit status --json`, compacted to one line, as
// a marker of kind.
func reportStatus(kind string) {
	js, err := exec.Command("/bin/luoinit", "status", "--json").Output()
	if err != nil {
		vmEnd("FAIL", fmt.Sprintf("luoinit status --json: %v", err))
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, js); err != nil {
		vmEnd("FAIL", fmt.Sprintf("luoinit status --json: %v: %s", err, js))
	}
	fmt.Printf("\nLUOTEST:%s %s\n", kind, compact.String())
}

// generationOf is the generation= of luoinit's state file, 0 if none.
func generationOf(state string) int {
	for _, kv := range strings.Fields(state) {
		if v, ok := strings.CutPrefix(kv, "generation="); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}
