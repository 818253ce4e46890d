package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/luo"
	"github.com/luoinit/luoinit/manifest"
	"github.com/luoinit/luoinit/status"
	"github.com/luoinit/luoinit/wellknown"
	"golang.org/x/sys/unix"
)

// The workloads of TestOwnedSessions: "owner" creates a LUO session of its
// own and, after the live update, takes it back itself (sessions = leave)
// or receives its fd from luoinit (sessions = retrieve); "sessdriver"
// checks the refusal of "luoinit.x", runs the live update and, in the new
// kernel, waits with `luoinit status --wait finished` and reports.
//
//	LUOTEST:OWNER_READY name session
//	LUOTEST:OWNER_OK name session mode
//	LUOTEST:REFUSED <prepare's error line>
//	LUOTEST:UNTOUCHED n sessions still held, state normal
//	LUOTEST:WAITED exit=0 after D
//	LUOTEST:STATUS_JSON {...}

const ownerSize, ownerSeed = 1 << 20, 0x5e55

// keep holds the owners' sessions open for the life of the process.
var keep []*luo.Session

// openDevice opens /dev/liveupdate, waiting while another process holds
// it (it admits one opener; the other workloads use it too).
func openDevice() (*luo.Device, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		d, err := luo.Open(luo.DefaultPath)
		if err == nil || !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return d, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ownerMain: `luotest workload owner --name N --session S [--retrieve]`.
func ownerMain(args []string) {
	fs := flag.NewFlagSet("owner", flag.ExitOnError)
	name := fs.String("name", "", "workload name")
	session := fs.String("session", "", "the session it owns")
	retrieve := fs.Bool("retrieve", false, "sessions = retrieve: luoinit hands the session fd over; push it (and a memfd \"data\") to prepare")
	fs.Parse(args)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	if *retrieve {
		ownerRetrieve(*name, *session)
	} else {
		ownerLeave(*name, *session)
	}
	<-term
	fmt.Printf("\nLUOTEST:WORKLOAD_TERM %s\n", *name)
	os.Exit(0)
}

// createOwned creates the session with one patterned memfd at token 1 and
// returns it; the memfd itself is closed (the session keeps it).
func createOwned(dev *luo.Device, name, session string) *luo.Session {
	s, err := dev.CreateSession(session)
	if err != nil {
		fail(name, err)
	}
	f, err := memfd(session, 0)
	if err != nil {
		fail(name, err)
	}
	defer f.Close()
	if err := fillPattern(f, ownerSize, ownerSeed); err != nil {
		fail(name, err)
	}
	if err := s.PreserveFD(int(f.Fd()), 1); err != nil {
		fail(name, err)
	}
	fmt.Printf("\nLUOTEST:OWNER_READY %s %s\n", name, session)
	return s
}

// takeOwned checks a session fd it got back: its name, its memfd's every
// byte; then FINISHes it, as its owner must.
func takeOwned(name, mode string, s *luo.Session, session string) {
	got, err := luo.SessionName(s.File())
	if err != nil || got != session {
		fail(name, fmt.Errorf("session fd names %q (%v), want %q", got, err, session))
	}
	f, err := s.RetrieveFD(1)
	if err != nil {
		fail(name, err)
	}
	if err := checkPattern(f, ownerSize, ownerSeed); err != nil {
		fail(name, fmt.Errorf("session %q token 1: %w", session, err))
	}
	f.Close()
	if err := s.Finish(); err != nil {
		fail(name, err)
	}
	s.Close()
	fmt.Printf("\nLUOTEST:OWNER_OK %s %s %s\n", name, session, mode)
}

// ownerLeave: before the live update the session does not exist yet and
// is created; after it, the owner retrieves it itself.
func ownerLeave(name, session string) {
	dev, err := openDevice()
	if err != nil {
		fail(name, err)
	}
	s, err := dev.RetrieveSession(session)
	if errors.Is(err, unix.ENOENT) {
		// Held until SIGTERM (a package variable: an unreferenced
		// *os.File would be closed by its finalizer, and the session with
		// it). prepare holds its own dup across the SIGTERM.
		keep = append(keep, createOwned(dev, name, session))
		dev.Close()
		return
	}
	dev.Close()
	if err != nil {
		fail(name, err)
	}
	takeOwned(name, string(manifest.SessionsLeave), s, session)
	os.Exit(0)
}

// ownerRetrieve: on the cold boot it takes its (empty) handoff, creates
// the session and pushes it with a memfd "data" when prepare asks; after
// the live update both come over the handoff socket.
func ownerRetrieve(name, session string) {
	files, err := handoff.Receive(name, 30*time.Second)
	if err != nil {
		fail(name, err)
	}
	if len(files) == 0 {
		dev, err := openDevice()
		if err != nil {
			fail(name, err)
		}
		s := createOwned(dev, name, session)
		keep = append(keep, s)
		dev.Close()
		data, err := makeMemfds("", []memSpec{{"data", 4096, 7}})
		if err != nil {
			fail(name, err)
		}
		go pushWhenAsked(name, "/run/luoinit/prepare.sock", append(data, handoff.File{Name: session, File: s.File()}))
		return
	}
	byName := map[string]*os.File{}
	for _, f := range files {
		byName[f.Name] = f.File
	}
	if d := byName["data"]; d == nil || checkPattern(d, 4096, 7) != nil {
		fail(name, fmt.Errorf("memfd \"data\" missing or wrong after the live update (got %d fds)", len(files)))
	}
	sf := byName[session]
	if sf == nil {
		fail(name, fmt.Errorf("no fd named %q handed over (got %d fds)", session, len(files)))
	}
	if is, err := luo.IsSession(sf); !is || err != nil {
		fail(name, fmt.Errorf("fd %q is not a LUO session (%v)", session, err))
	}
	takeOwned(name, string(manifest.SessionsRetrieve), luo.NewSession(sf, session), session)
	os.Exit(0)
}

// heldNow lists the session names some process other than PID 1 holds.
func heldNow() map[string]int {
	out := map[string]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == 1 {
			continue
		}
		ss, _ := luo.ProcSessions(pid)
		for _, s := range ss {
			out[s.Name] = pid
		}
	}
	return out
}

// pidOf finds the process of workload name by its environment.
func pidOf(name string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == 1 || pid == os.Getpid() {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/environ")
		for _, kv := range bytes.Split(b, []byte{0}) {
			if string(kv) == wellknown.EnvWorkload+"="+name {
				return pid
			}
		}
	}
	return 0
}

func luoinit(args ...string) (string, int) {
	var out bytes.Buffer
	cmd := exec.Command("/bin/luoinit", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
	}
	return out.String(), code
}

// sessDriverMain: `luotest workload sessdriver --expect a,b,c`.
func sessDriverMain(args []string) {
	fs := flag.NewFlagSet("sessdriver", flag.ExitOnError)
	expect := fs.String("expect", "", "the sessions every workload owns, comma-separated (luoinit.x included on the cold boot)")
	workloads := fs.String("workloads", "", "the workloads that must have exited before the end, comma-separated")
	fs.Parse(args)
	st, err := status.Read(wellknown.RunDir)
	if err != nil {
		vmEnd("FAIL", fmt.Sprintf("state file: %v", err))
	}
	if st.Boot == status.BootNormal {
		driveColdBoot(strings.Split(*expect, ","))
		return
	}
	driveUpdated(strings.Split(*workloads, ","))
}

func driveColdBoot(expect []string) {
	// Every owner and selftest daemon holds its sessions.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		held := heldNow()
		var missing []string
		for _, s := range expect {
			if _, ok := held[s]; !ok {
				missing = append(missing, s)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			vmEnd("FAIL", fmt.Sprintf("sessions never held: %v", missing))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// 1. A prepare whose config has workload "hijack" holding "luoinit.x":
	// refused before anything is preserved or stopped.
	out, code := luoinit("prepare", "--config", "/etc/luoinit/config.toml", "--kernel", "/boot/bzImage", "--reuse-cmdline")
	fmt.Print(out)
	line := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, `"luoinit.x"`) && strings.Contains(l, "refusing") {
			line = l
		}
	}
	if code != 1 || line == "" || !strings.Contains(line, `workload "hijack"`) || !strings.Contains(line, "pid ") {
		vmEnd("FAIL", fmt.Sprintf("prepare with a luoinit.x session: exit %d, no refusal naming workload, session and pid", code))
	}
	fmt.Printf("\nLUOTEST:REFUSED %s\n", line)
	held := heldNow()
	for _, s := range expect {
		pid, ok := held[s]
		if !ok {
			vmEnd("FAIL", fmt.Sprintf("session %q no longer held after the refused prepare", s))
		}
		if st, err := procStateOf(pid); err != nil || st == 'T' || st == 't' {
			vmEnd("FAIL", fmt.Sprintf("the holder of %q (pid %d) was stopped: %c %v", s, pid, st, err))
		}
	}
	if st, err := status.Read(wellknown.RunDir); err != nil || st.State != status.Normal {
		vmEnd("FAIL", fmt.Sprintf("state after the refused prepare: %+v %v", st, err))
	}
	fmt.Printf("\nLUOTEST:UNTOUCHED %d sessions still held, state normal\n", len(expect))

	// 2. Without the hijacker, the live update: the next config runs the
	// selftests' stage 2 (-s 2).
	if pid := pidOf("hijack"); pid == 0 || unix.Kill(pid, unix.SIGKILL) != nil {
		vmEnd("FAIL", "cannot end workload hijack")
	}
	for time.Now().Before(deadline) {
		if _, ok := heldNow()["luoinit.x"]; !ok {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Printf("\nLUOTEST:PREPARE_NEXT\n")
	// Its output goes to the console: prepare's log names every session.
	prep := exec.Command("/bin/luoinit", "prepare", "--config", "/etc/luoinit/next.toml", "--kernel", "/boot/bzImage", "--reuse-cmdline")
	prep.Stdout, prep.Stderr = os.Stdout, os.Stdout
	err := prep.Run()
	vmEnd("FAIL", fmt.Sprintf("luoinit prepare returned instead of rebooting: %v", err))
}

func procStateOf(pid int) (byte, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, fmt.Errorf("stat %q", b)
	}
	return b[i+2], nil
}

func driveUpdated(workloads []string) {
	t0 := time.Now()
	out, code := luoinit("status", "--wait", "finished", "--timeout", "3m")
	fmt.Printf("\nLUOTEST:WAITED exit=%d after %v: %s\n", code, time.Since(t0).Round(time.Millisecond), strings.TrimSpace(out))
	if code != 0 {
		vmEnd("FAIL", "luoinit status --wait finished failed")
	}
	js, code := luoinit("status", "--json")
	var st status.Status
	if code != 0 || json.Unmarshal([]byte(js), &st) != nil {
		vmEnd("FAIL", fmt.Sprintf("luoinit status --json: exit %d: %s", code, js))
	}
	var compact bytes.Buffer
	json.Compact(&compact, []byte(js))
	fmt.Printf("\nLUOTEST:STATUS_JSON %s\n", compact.String())
	text, _ := luoinit("status")
	fmt.Printf("luoinit status:\n%s", text)
	show, _ := luoinit("manifest", "show") // the copy PID 1 wrote, /run/luoinit/manifest.toml
	fmt.Printf("luoinit manifest show:\n%s", show)
	// The end waits for the workloads under test to be done with their
	// stage 2, so that their verdicts are on the console.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var running []string
		for _, w := range workloads {
			if pidOf(w) != 0 {
				running = append(running, w)
			}
		}
		if len(running) == 0 {
			break
		}
		if time.Now().After(deadline) {
			sort.Strings(running)
			vmEnd("FAIL", fmt.Sprintf("workloads still running: %v", running))
		}
		time.Sleep(100 * time.Millisecond)
	}
	vmEnd("PASS", fmt.Sprintf("state %s, generation %d", st.State, st.Generation))
}
