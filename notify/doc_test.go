package notify

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var cBlock = regexp.MustCompile("(?s)## A minimal daemon in C.*?```c\n(.*?)```")

// The C example of docs/unmodified-software.md compiles and works against
// this server: it stores its state memfd, says READY=1, and its restart
// gets the memfd back by name through the shim.
func TestDocExample(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("no gcc (tests/deps.sh installs it)")
	}
	doc, err := os.ReadFile("../docs/unmodified-software.md")
	if err != nil {
		t.Fatal(err)
	}
	m := cBlock.FindSubmatch(doc)
	if m == nil {
		t.Fatal("no C example in docs/unmodified-software.md")
	}
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "state.c"), filepath.Join(dir, "state")
	os.WriteFile(src, m[1], 0o644)
	if out, err := exec.Command(gcc, "-Wall", "-Werror", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("the doc's example does not compile: %v\n%s", err, out)
	}

	s, log := openSocket(t, 4)
	run := func(listen bool) string {
		var out bytes.Buffer
		cmd := exec.Command(bin)
		cmd.Env = s.Env()
		if listen { // as PID 1 starts it: through the shim, with the store
			files, err := s.Store().Dup()
			if err != nil {
				t.Fatal(err)
			}
			cmd = exec.Command(os.Args[0], ShimArgv("", []string{bin})[1:]...)
			var names []string
			for _, f := range files {
				names = append(names, f.Name)
				cmd.ExtraFiles = append(cmd.ExtraFiles, f.File)
				defer f.File.Close()
			}
			cmd.Env = append(s.Env(), ListenEnv(names)...)
		}
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		s.Started(cmd.Process.Pid)
		select {
		case <-s.Ready():
		case <-time.After(5 * time.Second):
			t.Fatalf("no READY=1 from the example:\n%s", log)
		}
		cmd.Process.Kill()
		cmd.Wait()
		s.Exited()
		return strings.TrimSpace(out.String())
	}
	if out := run(false); out != "generation 1" {
		t.Fatalf("first run printed %q", out)
	}
	if got := s.Store().Names(); len(got) != 1 || got[0] != "state" {
		t.Fatalf("store holds %v, want the example's state memfd", got)
	}
	if out := run(true); out != "generation 2" {
		t.Fatalf("the restart printed %q, want its state back", out)
	}
}
