// Command perf is `make perf`: it measures luoinit's restore path against a
// raw baseline in the same VM, back to back in one run, and prints one table.
//
// The raw baseline (tests/perf/raw/rawluo.c) is a static C PID 1 that
// preserves N 4 KiB memfds in one session, kexecs, and in the new kernel
// retrieves, reads and verifies every one and finishes: nothing but the
// ioctls. The luoinit run does the same through the product: `luoinit
// prepare` of one workload holding the same N memfds (pushed over the
// handoff socket), luoinit as PID 1 restoring it, the workload receiving,
// acknowledging and verifying every byte.
//
// Two more baselines say what any Go PID 1 pays here (tests/perf/rawgo):
// the raw baseline's second stage in Go through luoinit's luo package
// ("Go"), and the same linked with the dependencies luoinit is built on,
// called as luoinit calls them ("Go + deps": their package inits and their
// binary size, which luoinit cannot get under while it uses them).
//
// Times under software emulation only mean something next to other times
// of the same run: the table prints ratios next to them.
//
// Environment: LUOINIT_KERNEL (the bzImage; make perf sets it),
// PERF_N (default "1,100,1000,10000"), PERF_WORKLOADS (default "100x10";
// "" skips), PERF_WORKLOAD ("c", the default: the workloads are
// tests/perf/raw/perfwork.c; "go": luotest), PERF_ONLY ("raw" or
// "luoinit" to run one side), PERF_FLOOR ("0" skips the two Go
// baselines), PERF_STARTUP ("0" skips the program-start
// boot: C, Go and luoinit), PERF_CONSOLE
// (a directory to keep every run's serial console in), PERF_APPEND (more
// kernel command line, e.g. GODEBUG=inittrace=1, which the kernel passes
// to init's environment).
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/luoinit/luoinit/tests/vm"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "perf: %v\n", err)
		os.Exit(1)
	}
}

// bins are the programs the guests run.
type bins struct {
	dir, luoinit, luotest, raw, noop, perfwork string
	rawGo, rawFloor                            string
	luoinitSize, strippedSize                  int64
	rawGoSize, rawFloorSize, rawImageSize      int64
}

// measure is one row of the table: a case run raw and through luoinit.
type measure struct {
	name     string
	fds      int
	raw, luo map[string]int64 // figures in ns (sizes in bytes), by key
	rawErr   error
	luoErr   error
	// The Go floor (PERF_FLOOR): rawgo, and rawgo with luoinit's
	// dependencies linked.
	goRaw, floor       map[string]int64
	goRawErr, floorErr error
	workloads          int
	rawElapsed         time.Duration
	luoElapsed         time.Duration
}

func run() error {
	if l := workloadLang(); l != "c" && l != "go" {
		return fmt.Errorf("PERF_WORKLOAD: %q is neither c nor go", l)
	}
	k, err := vm.FindKernel()
	if err != nil {
		return err
	}
	b, err := build(k)
	if err != nil {
		return err
	}
	defer os.RemoveAll(b.dir)
	accel := vm.ProbeAccel(context.Background(), "", k.BzImage)
	fmt.Printf("make perf: kernel %s, accelerator %s (software emulation unless kvm: compare figures only inside this run)\n", k.Version, accel)
	fmt.Printf("luoinit binary %s, stripped (-s -w) %s; the measured workloads are in %s\n", size(b.luoinitSize), size(b.strippedSize), map[string]string{"c": "C (perfwork)", "go": "Go (luotest)"}[workloadLang()])
	fmt.Printf("Go floor binaries, stripped: the raw second stage in Go %s; the same with luoinit's dependencies linked %s (%d bytes); and with preflight's kernel-image reader (its decompressors) too %s (%d bytes); luoinit %d bytes, the target 4 MiB %d\n",
		size(b.rawGoSize), size(b.rawFloorSize), b.rawFloorSize, size(b.rawImageSize), b.rawImageSize, b.strippedSize, 4<<20)

	var cases []measure
	for _, s := range strings.Split(env("PERF_N", "1,100,1000,10000"), ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("PERF_N: %q is not a positive number", s)
		}
		cases = append(cases, measure{name: fmt.Sprintf("1 workload, %d fds", n), fds: n, workloads: 1})
	}
	if w := env("PERF_WORKLOADS", "100x10"); w != "" {
		var nw, per int
		if _, err := fmt.Sscanf(w, "%dx%d", &nw, &per); err != nil || nw < 1 || per < 1 {
			return fmt.Errorf("PERF_WORKLOADS: %q is not WxF", w)
		}
		cases = append(cases, measure{name: fmt.Sprintf("%d workloads, %d fds each", nw, per), fds: nw * per, workloads: nw})
	}
	var st startupFigures
	if os.Getenv("PERF_STARTUP") != "0" {
		fmt.Println("-- program start: C, Go and luoinit, no live update")
		st.m, st.err = runStartup(k, b)
		report("startup", st.err)
	}
	only := os.Getenv("PERF_ONLY")
	for i := range cases {
		c := &cases[i]
		if only != "luoinit" {
			fmt.Printf("-- raw, %d fds in one session\n", c.fds)
			c.raw, c.rawElapsed, c.rawErr = runRaw(k, b, c.fds, b.raw)
			report("raw", c.rawErr)
			if os.Getenv("PERF_FLOOR") != "0" {
				fmt.Printf("-- raw in Go, %d fds\n", c.fds)
				c.goRaw, _, c.goRawErr = runRaw(k, b, c.fds, b.rawGo)
				report("raw in Go", c.goRawErr)
				fmt.Printf("-- raw in Go with luoinit's dependencies, %d fds\n", c.fds)
				c.floor, _, c.floorErr = runRaw(k, b, c.fds, b.rawFloor)
				report("raw in Go + deps", c.floorErr)
			}
		}
		if only != "raw" {
			fmt.Printf("-- luoinit, %s\n", c.name)
			c.luo, c.luoElapsed, c.luoErr = runLUOinit(k, b, c.workloads, c.fds/c.workloads)
			report("luoinit", c.luoErr)
			timeline(c.luo)
		}
	}
	table(cases)
	floorTable(cases)
	st.print()
	verdicts(cases)
	return failures(cases, st)
}

// verdicts says, for each case measured on both sides, whether luoinit
// met its targets, with the numbers: every fd retrieved at most 1.2x raw
// C + 5 ms, every fd verified at most 1.5x raw C. A target not met is a
// finding, not a failed run.
func verdicts(cases []measure) {
	fmt.Println()
	for _, c := range cases {
		if c.rawErr != nil || c.luoErr != nil {
			continue
		}
		rawFds, luoFds := c.raw["fds_ns"]-c.raw["exec_ns"], c.luo["phase.fds_retrieved_ns"]-c.luo["exec_ns"]
		rawVer, luoVer := c.raw["verified_ns"]-c.raw["exec_ns"], c.luo["verified_ns"]-c.luo["exec_ns"]
		verdict := func(what string, got, target int64) {
			word := "met"
			if got <= 0 || got > target {
				word = "not met"
			}
			fmt.Printf("target %-7s %s: %s: luoinit %s, target %s\n", word, c.name, what, ms(got, nil), ms(target, nil))
		}
		verdict("every fd retrieved at most 1.2x raw C + 5 ms", luoFds, int64(1.2*float64(rawFds))+5e6)
		verdict("every fd verified at most 1.5x raw C", luoVer, int64(1.5*float64(rawVer)))
	}
}

// failures is the error of a run in which a case or the program-start
// measurement failed: make perf then exits non-zero.
func failures(cases []measure, st startupFigures) error {
	n := 0
	for _, c := range cases {
		for _, err := range []error{c.rawErr, c.goRawErr, c.floorErr, c.luoErr} {
			if err != nil {
				n++
			}
		}
	}
	if st.err != nil {
		n++
	}
	if n > 0 {
		return fmt.Errorf("%d measurements failed (the failed: lines above)", n)
	}
	return nil
}

func report(what string, err error) {
	if err != nil {
		fmt.Printf("   %s: FAILED: %v\n", what, err)
	}
}

func env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

func build(k *vm.Kernel) (*bins, error) {
	dir, err := os.MkdirTemp("", "luoinit-perf")
	if err != nil {
		return nil, err
	}
	b := &bins{dir: dir, luoinit: filepath.Join(dir, "luoinit"), luotest: filepath.Join(dir, "luotest"), raw: filepath.Join(dir, "rawluo"), noop: filepath.Join(dir, "noop"), perfwork: filepath.Join(dir, "perfwork"),
		rawGo: filepath.Join(dir, "rawgo"), rawFloor: filepath.Join(dir, "rawgo-floor")}
	if err := vm.BuildStatic("./init", b.luoinit); err != nil {
		return nil, err
	}
	if err := vm.BuildStatic("./tests/perf/rawgo", b.rawGo); err != nil {
		return nil, err
	}
	if err := vm.BuildStatic("./tests/perf/rawgo", b.rawFloor, "-tags", "floor"); err != nil {
		return nil, err
	}
	// For its size only: the floor with preflight's kernel-image reader
	// and its decompressors.
	rawImage := filepath.Join(dir, "rawgo-floor-kernelimage")
	if err := vm.BuildStatic("./tests/perf/rawgo", rawImage, "-tags", "floor kernelimage"); err != nil {
		return nil, err
	}
	if err := vm.BuildStatic("./tests/perf/noop", b.noop); err != nil {
		return nil, err
	}
	if err := vm.BuildStatic("./tests/guest/luotest", b.luotest); err != nil {
		return nil, err
	}
	stripped := filepath.Join(dir, "luoinit.stripped")
	root, err := vm.ModuleRoot()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", stripped, "./init")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build -ldflags=-s -w ./init: %v\n%s", err, out)
	}
	// The raw baseline compiles against the uapi header of the kernel it
	// runs on (tests/kernel/build.sh keeps it beside the bzImage).
	inc := filepath.Join(dir, "include")
	os.MkdirAll(filepath.Join(inc, "linux"), 0o755)
	hdr, err := os.ReadFile(filepath.Join(k.Dir, "liveupdate.h"))
	if err != nil {
		return nil, fmt.Errorf("the kernel's uapi header: %w", err)
	}
	os.WriteFile(filepath.Join(inc, "linux", "liveupdate.h"), hdr, 0o644)
	for out, src := range map[string]string{b.raw: "rawluo.c", b.perfwork: "perfwork.c"} {
		cc := exec.Command("gcc", "-static", "-O2", "-Wall", "-I", inc, "-o", out, filepath.Join(root, "tests/perf/raw", src))
		if msg, err := cc.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("gcc %s: %v\n%s", src, err, msg)
		}
	}
	for p, dst := range map[string]*int64{b.luoinit: &b.luoinitSize, stripped: &b.strippedSize, b.rawGo: &b.rawGoSize, b.rawFloor: &b.rawFloorSize, rawImage: &b.rawImageSize} {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		*dst = st.Size()
	}
	return b, nil
}

func boot(k *vm.Kernel, img, appendArgs string, timeout time.Duration) (*vm.Result, error) {
	if extra := os.Getenv("PERF_APPEND"); extra != "" {
		appendArgs += " " + extra
	}
	res, err := vm.Run(context.Background(), vm.Config{Kernel: k.BzImage, Initramfs: img, Append: appendArgs, Timeout: timeout})
	if err != nil {
		return nil, err
	}
	if dir := os.Getenv("PERF_CONSOLE"); dir != "" {
		// Every console line with the host's time, for a closer look.
		os.MkdirAll(dir, 0o755)
		name := strings.TrimSuffix(filepath.Base(filepath.Dir(img)), filepath.Ext(img)) + ".log"
		os.WriteFile(filepath.Join(dir, name), []byte(strings.Join(res.Console, "\n")+"\n"), 0o644)
	}
	if !res.Passed {
		return res, fmt.Errorf("%s", res.Message)
	}
	if res.Boots != 2 {
		return res, fmt.Errorf("%d kernels booted, want 2", res.Boots)
	}
	return res, nil
}

var (
	kv      = regexp.MustCompile(`([\w.:-]+)=(-?\d+)`)
	phaseRe = regexp.MustCompile(`phase name="([^"]+)" boottime_ns=(\d+)`)
)

// runRaw boots rawluo's first stage with n memfds, which kexecs into
// second: rawluo itself, or rawgo.
func runRaw(k *vm.Kernel, b *bins, n int, second string) (map[string]int64, time.Duration, error) {
	dir, err := os.MkdirTemp(b.dir, "raw")
	if err != nil {
		return nil, 0, err
	}
	img, err := vm.KexecImagesTo(dir, b.raw, second, k.BzImage)
	if err != nil {
		return nil, 0, err
	}
	res, err := boot(k, img, fmt.Sprintf("liveupdate=on rawluo.n=%d", n), timeout(n))
	if err != nil {
		return nil, 0, err
	}
	perf := res.Find("PERF")
	if len(perf) != 1 {
		return nil, 0, fmt.Errorf("no PERF marker from %s", filepath.Base(second))
	}
	m := map[string]int64{}
	for _, f := range kv.FindAllStringSubmatch(perf[0].Text, -1) {
		m[f[1]], _ = strconv.ParseInt(f[2], 10, 64)
	}
	return m, res.Elapsed, nil
}

// startupFigures is what starting a program costs in the VM (rawluo's
// startup mode): C, Go and luoinit, each cold (first run) and warm.
type startupFigures struct {
	m   map[string]int64
	err error
}

// startupCopies is how many copies of each program the program-start
// boot runs cold (STARTUP_COPIES in rawluo.c); the table gives the median.
const startupCopies = 3

// coldMedian is the median of the cold runs of prog.
func coldMedian(m map[string]int64, prog string) int64 {
	var v []int64
	for k := 1; k <= startupCopies; k++ {
		if t, ok := m[fmt.Sprintf("%s_cold%d_ns", prog, k)]; ok {
			v = append(v, t)
		}
	}
	if len(v) == 0 {
		return 0
	}
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return v[len(v)/2]
}

// runStartup boots once, rawluo as init timing /startup/{c,go,luoinit}K.
func runStartup(k *vm.Kernel, b *bins) (map[string]int64, error) {
	dir, err := os.MkdirTemp(b.dir, "startup")
	if err != nil {
		return nil, err
	}
	files := []vm.File{{Guest: "init", Host: b.raw}}
	for k := 1; k <= startupCopies; k++ {
		files = append(files,
			vm.File{Guest: fmt.Sprintf("startup/c%d", k), Host: b.raw},
			vm.File{Guest: fmt.Sprintf("startup/go%d", k), Host: b.noop},
			vm.File{Guest: fmt.Sprintf("startup/luoinit%d", k), Host: b.luoinit})
	}
	img, err := vm.Image(dir, "startup.cpio", files...)
	if err != nil {
		return nil, err
	}
	res, err := vm.Run(context.Background(), vm.Config{Kernel: k.BzImage, Initramfs: img, Append: "rawluo.startup=1", Timeout: 4 * time.Minute})
	if err != nil {
		return nil, err
	}
	if !res.Passed {
		return nil, fmt.Errorf("%s", res.Message)
	}
	marks := res.Find("STARTUP")
	if len(marks) != 1 {
		return nil, fmt.Errorf("no STARTUP marker from rawluo")
	}
	m := map[string]int64{}
	for _, f := range kv.FindAllStringSubmatch(marks[0].Text, -1) {
		m[f[1]], _ = strconv.ParseInt(f[2], 10, 64)
	}
	return m, nil
}

// print says what a program's start costs here, and so what any Go PID 1
// pays before its main that a C one does not.
func (s startupFigures) print() {
	if s.m == nil && s.err == nil {
		return
	}
	fmt.Println()
	if s.err != nil {
		fmt.Println("program start: failed:", s.err)
		return
	}
	m := s.m
	fmt.Printf("Program start in this VM, fork to exit (cold: a binary's first run, as a PID 1's after the kexec, median of %d copies; warm: a second run):\n", startupCopies)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "program\tcold\tcold runs\twarm\tcold / C cold\t")
	cC, cGo, cLuo := coldMedian(m, "c"), coldMedian(m, "go"), coldMedian(m, "luoinit")
	for _, p := range []struct{ name, key string }{
		{"C, returns at once", "c"},
		{"Go, empty main (the runtime alone)", "go"},
		{"luoinit --help (runtime + every package init)", "luoinit"},
	} {
		var runs []string
		for k := 1; k <= startupCopies; k++ {
			runs = append(runs, ms(m[fmt.Sprintf("%s_cold%d_ns", p.key, k)], nil))
		}
		cold := coldMedian(m, p.key)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", p.name, ms(cold, nil), strings.Join(runs, ", "), ms(m[p.key+"_warm_ns"], nil), ratio(cold, cC))
	}
	tw.Flush()
	fmt.Printf("Medians: the Go runtime's start costs %+.1f ms next to C's here; luoinit's package inits %+.1f ms next to an empty Go program.\n",
		float64(cGo-cC)/1e6, float64(cLuo-cGo)/1e6)
}

func timeout(n int) time.Duration { return 4*time.Minute + time.Duration(n)*30*time.Millisecond }

// luoinitConfig: nw workloads with per 4 KiB memfds each, and the
// checker, which reports the state file and PID 1's peak RSS. The
// workloads are perfwork (C) unless PERF_WORKLOAD=go: luotest "auto".
func luoinitConfig(nw, per int) string {
	var b strings.Builder
	b.WriteString("version = 1\n")
	for w := 0; w < nw; w++ {
		name := "perf"
		if nw > 1 {
			name = fmt.Sprintf("w%03d", w)
		}
		argv := fmt.Sprintf(`["/bin/perfwork", %q, "%d"]`, name, per)
		if workloadLang() == "go" {
			argv = fmt.Sprintf(`["/bin/luotest", "workload", "auto", "--name", %q, "--count", "%d"]`, name, per)
		}
		fmt.Fprintf(&b, "\n[[workload]]\nname = %q\nargv = %s\nhandoff = \"socket\"\n", name, argv)
		for i := 0; i < per; i++ {
			fmt.Fprintf(&b, "\n  [[workload.fd]]\n  name = \"m%03d\"\n", i)
		}
	}
	// The reporter starts two seconds late: its Go runtime's start would
	// otherwise compete for the CPU with the workloads being measured.
	b.WriteString("\n[[workload]]\nname = \"checker\"\nargv = [\"/bin/perfwork\", \"--later\", \"2\", \"/bin/luotest\", \"workload\", \"checker\", \"--state\", \"finished\"]\nhandoff = \"socket\"\n")
	return b.String()
}

var (
	retrievedRe = regexp.MustCompile(`fds retrieved (\S+) after init start`)
	ackedRe     = regexp.MustCompile(`(\S+): (\d+) fds acked (\S+) after init start`)
	preparedRe  = regexp.MustCompile(`prepare: prepared in (\S+)`)
	verifiedRe  = regexp.MustCompile(`verified_ns=(\d+)`)
	freezeRe    = regexp.MustCompile(`freeze took \S+: waiting for the workloads to exit \S+, luoinit's own steps (\S+)\)`)
)

// workloadLang is the language of the measured workloads: "c" (perfwork,
// the default) or "go" (luotest).
func workloadLang() string { return env("PERF_WORKLOAD", "c") }

func runLUOinit(k *vm.Kernel, b *bins, nw, per int) (map[string]int64, time.Duration, error) {
	dir, err := os.MkdirTemp(b.dir, "luoinit")
	if err != nil {
		return nil, 0, err
	}
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(luoinitConfig(nw, per)), 0o644); err != nil {
		return nil, 0, err
	}
	second, err := vm.Image(dir, "initramfs2.cpio",
		vm.File{Guest: "init", Host: b.luoinit},
		vm.File{Guest: "bin/luotest", Host: b.luotest},
		vm.File{Guest: "bin/perfwork", Host: b.perfwork},
		vm.File{Guest: "etc/luoinit/config.toml", Host: cfg})
	if err != nil {
		return nil, 0, err
	}
	first, err := vm.Image(dir, "initramfs1.cpio",
		vm.File{Guest: "init", Host: b.luotest},
		vm.File{Guest: "bin/luotest", Host: b.luotest},
		vm.File{Guest: "bin/perfwork", Host: b.perfwork},
		vm.File{Guest: "bin/luoinit", Host: b.luoinit},
		vm.File{Guest: "etc/luoinit/config.toml", Host: cfg},
		vm.File{Guest: vm.GuestKernel, Host: k.BzImage},
		vm.File{Guest: vm.GuestInitramfs2, Host: second})
	if err != nil {
		return nil, 0, err
	}
	res, err := boot(k, first, "liveupdate=on luotest.scenario=restore", timeout(nw*per))
	if err != nil {
		return nil, 0, err
	}
	m := map[string]int64{}
	for _, mk := range res.Find("STATE") {
		for _, f := range kv.FindAllStringSubmatch(mk.Text, -1) {
			m[f[1]], _ = strconv.ParseInt(f[2], 10, 64)
		}
		for _, f := range phaseRe.FindAllStringSubmatch(mk.Text, -1) {
			m["phase."+f[1]+"_ns"], _ = strconv.ParseInt(f[2], 10, 64)
		}
	}
	for _, mk := range append(res.Find("PID1MEM"), res.Find("INITEXEC")...) {
		for _, f := range kv.FindAllStringSubmatch(mk.Text, -1) {
			m[f[1]], _ = strconv.ParseInt(f[2], 10, 64)
		}
	}
	var lastAck time.Duration
	acked := 0
	for _, line := range res.Console {
		if sm := retrievedRe.FindStringSubmatch(line); sm != nil {
			if d, err := time.ParseDuration(sm[1]); err == nil {
				m["retrieved_rel_ns"] = int64(d)
			}
		}
		if sm := freezeRe.FindStringSubmatch(line); sm != nil {
			if d, err := time.ParseDuration(sm[1]); err == nil {
				m["freeze_own_ns"] = int64(d)
			}
		}
		if sm := preparedRe.FindStringSubmatch(line); sm != nil {
			if d, err := time.ParseDuration(sm[1]); err == nil {
				m["prepared_ns"] = int64(d)
			}
		}
		if !strings.Contains(line, "restore report:") {
			continue
		}
		for _, sm := range ackedRe.FindAllStringSubmatch(line, -1) {
			if sm[1] == "checker" {
				continue // the harness's own reporter, not a measured workload
			}
			d, err := time.ParseDuration(sm[3])
			if err != nil {
				continue
			}
			acked++
			lastAck = max(lastAck, d)
		}
	}
	if acked != nw {
		return m, res.Elapsed, fmt.Errorf("%d of %d workloads acknowledged in luoinit's report", acked, nw)
	}
	m["acked_rel_ns"] = int64(lastAck)
	if len(res.Find("RESTORED")) != nw {
		return m, res.Elapsed, fmt.Errorf("%d of %d workloads verified their fds", len(res.Find("RESTORED")), nw)
	}
	// Every fd verified: the last workload's stamp after reading every
	// byte, as raw C stamps its own (the C workload; the Go one has none).
	for _, mk := range res.Find("RESTORED") {
		if f := verifiedRe.FindStringSubmatch(mk.Text); f != nil {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			m["verified_ns"] = max(m["verified_ns"], v)
		}
	}
	return m, res.Elapsed, nil
}

// firstAndLast keeps, of each per-workload kind of phase (exec, ack,
// finish) that more than three workloads have, only the first and the
// last: a hundred workloads' phases would be three hundred entries.
func firstAndLast[P any](ps []P, kind func(P) string) []P {
	n := map[string]int{}
	for _, p := range ps {
		n[kind(p)]++
	}
	seen := map[string]int{}
	var out []P
	for _, p := range ps {
		k := kind(p)
		seen[k]++
		if !perWorkload[k] || n[k] <= 3 || seen[k] == 1 || seen[k] == n[k] {
			out = append(out, p)
		}
	}
	return out
}

// perWorkload are the kinds of phase each workload has once: KIND:NAME.
var perWorkload = map[string]bool{"exec": true, "ack": true, "finish": true}

// timeline prints luoinit's phases (the state file's phase.NAME_ns) from
// init start, each with the time since the one before.
func timeline(m map[string]int64) {
	type phase struct {
		name string
		at   int64
	}
	var ps []phase
	for k, v := range m {
		if name, ok := strings.CutPrefix(k, "phase."); ok {
			ps = append(ps, phase{strings.TrimSuffix(name, "_ns"), v})
		}
	}
	if v, ok := m["exec_ns"]; ok {
		ps = append(ps, phase{"kernel-runs-init", v})
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].at < ps[j].at })
	if len(ps) == 0 {
		return
	}
	ps = firstAndLast(ps, func(p phase) string { kind, _, _ := strings.Cut(p.name, ":"); return kind })
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			fmt.Fprintf(&b, ", %s +%.1f", p.name, float64(p.at-ps[i-1].at)/1e6)
		} else {
			fmt.Fprintf(&b, "   luoinit phases (ms since the one before): %s", p.name)
		}
	}
	fmt.Println(b.String())
}

func table(cases []measure) {
	fmt.Println()
	fmt.Println("Times from init start: the kernel running /init (its kmsg line, mapped onto CLOCK_BOOTTIME); ratio = luoinit / raw.")
	fmt.Println("Every fd verified is the same work on both sides: every byte of every fd read back and compared, stamped when done (raw C in PID 1; with luoinit, the last workload). Workloads back is luoinit's last acknowledgement, before the workloads read their fds.")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\tkernel start to init raw\tluoinit\tinit to main raw\tluoinit\tevery fd retrieved raw\tluoinit\tratio\tof it after main raw\tluoinit\tratio\tevery fd verified raw\tluoinit\tratio\tworkloads back luoinit\tfreeze window\tof it luoinit's\tPID 1 VmHWM\tprepare to kexec load\t")
	for _, c := range cases {
		row := []string{c.name}
		// The zero of both: the kernel running /init (its kmsg line, its
		// stamp mapped onto CLOCK_BOOTTIME), so that what comes before
		// main (the Go runtime's start) counts.
		rawInit, luoInit := c.raw["exec_ns"], c.luo["exec_ns"]
		rawFds := c.raw["fds_ns"] - rawInit
		rawVer := c.raw["verified_ns"] - rawInit
		luoFds := c.luo["phase.fds_retrieved_ns"] - luoInit
		luoAck := lastAck(c.luo) - luoInit
		luoVer := c.luo["verified_ns"] - luoInit
		// The same from main: what the program does once its runtime
		// has started (see the program-start table for what is before).
		rawMainFds := c.raw["fds_ns"] - c.raw["init_ns"]
		luoMainFds := c.luo["phase.fds_retrieved_ns"] - c.luo["phase.init_ns"]
		row = append(row, ms(rawInit, c.rawErr), ms(luoInit, c.luoErr),
			ms(c.raw["init_ns"]-rawInit, c.rawErr), ms(c.luo["phase.init_ns"]-luoInit, c.luoErr), ms(rawFds, c.rawErr), ms(luoFds, c.luoErr), ratio(luoFds, rawFds, c.rawErr, c.luoErr),
			ms(rawMainFds, c.rawErr), ms(luoMainFds, c.luoErr), ratio(luoMainFds, rawMainFds, c.rawErr, c.luoErr),
			ms(rawVer, c.rawErr), ms(luoVer, c.luoErr), ratio(luoVer, rawVer, c.rawErr, c.luoErr), ms(luoAck, c.luoErr),
			ms(c.luo["old_kernel_blackout_ns"], c.luoErr), ms(c.luo["freeze_own_ns"], c.luoErr), kb(c.luo["VmHWM"], c.luoErr), ms(c.luo["prepared_ns"], c.luoErr))
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	tw.Flush()
	var failed []string
	for _, c := range cases {
		if c.rawErr != nil {
			failed = append(failed, fmt.Sprintf("%s raw: %v", c.name, c.rawErr))
		}
		if c.luoErr != nil {
			failed = append(failed, fmt.Sprintf("%s luoinit: %v", c.name, c.luoErr))
		}
	}
	sort.Strings(failed)
	for _, f := range failed {
		fmt.Println("failed:", f)
	}
}

// lastAck is CLOCK_BOOTTIME of the last measured workload's
// acknowledgement: the latest "ack:NAME" phase but the checker's (the
// harness's reporter, started late on purpose).
func lastAck(m map[string]int64) int64 {
	var last int64
	for k, v := range m {
		if strings.HasPrefix(k, "phase.ack:") && k != "phase.ack:checker_ns" {
			last = max(last, v)
		}
	}
	return last
}

func ms(ns int64, err error) string {
	if err != nil || ns <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f ms", float64(ns)/1e6)
}

func ratio(a, b int64, errs ...error) string {
	for _, e := range errs {
		if e != nil {
			return "-"
		}
	}
	if a <= 0 || b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", float64(a)/float64(b))
}

func kb(v int64, err error) string {
	if err != nil || v <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(v)/1024)
}

func size(n int64) string {
	if n <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// floorTable says how close a Go PID 1 can come to the raw C baseline
// here, and so what the target "every fd retrieved at most 1.2x raw + 5
// ms" asks of a Go program: the raw second stage in Go, the same with
// luoinit's dependencies linked, and luoinit, next to raw C.
func floorTable(cases []measure) {
	if os.Getenv("PERF_FLOOR") == "0" || os.Getenv("PERF_ONLY") == "luoinit" {
		return
	}
	fmt.Println()
	fmt.Println("The floor of a Go PID 1: every fd retrieved from init start, raw C, the same steps in Go (luo package), the same linked with luoinit's dependencies, and luoinit; the target is 1.2x raw C + 5 ms.")
	fmt.Println("Then every fd verified (read back) from init start, raw C's against luoinit's (its last workload's), whose target is 1.5x raw C's.")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\traw C\ttarget\tGo\t/ C\tGo + deps\t/ C\tluoinit\t/ C\t/ Go + deps\tinit to main C\tGo\tGo + deps\tluoinit\tafter main C\tGo\tGo + deps\tluoinit\tverified C\ttarget\tGo\tGo + deps\tverified luoinit\t")
	for _, c := range cases {
		after := func(m map[string]int64, key, from string) int64 { return m[key] - m[from] }
		fromInit := func(m map[string]int64, key string) int64 { return after(m, key, "exec_ns") }
		rawC, rawGo, floor, luo := fromInit(c.raw, "fds_ns"), fromInit(c.goRaw, "fds_ns"), fromInit(c.floor, "fds_ns"), fromInit(c.luo, "phase.fds_retrieved_ns")
		target := int64(1.2*float64(rawC)) + 5e6
		row := []string{c.name,
			ms(rawC, c.rawErr), ms(target, c.rawErr),
			ms(rawGo, c.goRawErr), ratio(rawGo, rawC, c.goRawErr, c.rawErr),
			ms(floor, c.floorErr), ratio(floor, rawC, c.floorErr, c.rawErr),
			ms(luo, c.luoErr), ratio(luo, rawC, c.luoErr, c.rawErr), ratio(luo, floor, c.luoErr, c.floorErr),
			ms(fromInit(c.raw, "init_ns"), c.rawErr), ms(fromInit(c.goRaw, "init_ns"), c.goRawErr), ms(fromInit(c.floor, "init_ns"), c.floorErr), ms(fromInit(c.luo, "phase.init_ns"), c.luoErr),
			ms(after(c.raw, "fds_ns", "init_ns"), c.rawErr), ms(after(c.goRaw, "fds_ns", "init_ns"), c.goRawErr), ms(after(c.floor, "fds_ns", "init_ns"), c.floorErr), ms(after(c.luo, "phase.fds_retrieved_ns", "phase.init_ns"), c.luoErr),
			ms(fromInit(c.raw, "verified_ns"), c.rawErr), ms(int64(1.5*float64(fromInit(c.raw, "verified_ns"))), c.rawErr),
			ms(fromInit(c.goRaw, "verified_ns"), c.goRawErr), ms(fromInit(c.floor, "verified_ns"), c.floorErr), ms(fromInit(c.luo, "verified_ns"), c.luoErr)}
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	tw.Flush()
	for _, c := range cases {
		if c.goRawErr != nil {
			fmt.Printf("failed: %s raw in Go: %v\n", c.name, c.goRawErr)
		}
		if c.floorErr != nil {
			fmt.Printf("failed: %s raw in Go + deps: %v\n", c.name, c.floorErr)
		}
	}
}
