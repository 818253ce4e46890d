package manifest

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/luoinit/luoinit/handoff"
)

// problem is one thing wrong with a config or manifest.
type problem struct {
	path  string   // the field: workload[2].fd[1].token
	ctx   string   // who it is about: workload "kv" fd "arena"
	text  string   // what is wrong
	ref   string   // the field it clashes with, if any
	deps  []string // other fields the verdict depends on
	err   error    // the underlying error, if any
	file  string   // set by parse
	line  int      // set by parse: line of path in file, 0 if not found
	refLn int      // set by parse: line of ref
}

func (p *problem) Error() string {
	var b strings.Builder
	switch {
	case p.file != "" && p.line > 0:
		fmt.Fprintf(&b, "%s:%d: ", p.file, p.line)
	case p.file != "":
		b.WriteString(p.file + ": ")
	}
	if p.line == 0 && p.path != "" && p.path != p.ctx {
		b.WriteString(p.path + ": ")
	}
	if p.ctx != "" {
		b.WriteString(p.ctx + ": ")
	}
	b.WriteString(p.text)
	if p.refLn > 0 {
		fmt.Fprintf(&b, " (line %d)", p.refLn)
	} else if p.ref != "" && p.line == 0 {
		fmt.Fprintf(&b, " (%s)", p.ref)
	}
	return b.String()
}

func (p *problem) Unwrap() error { return p.err }

// tooLarge is the problem of a file over MaxFileSize.
func tooLarge(file string) *problem {
	return &problem{file: file, text: fmt.Sprintf("larger than %d bytes (%d MiB), the limit of a luoinit config or manifest", MaxFileSize, MaxFileSize>>20)}
}

// shorten quotes s for a message, cut to about max bytes.
func shorten(s string, max int) string {
	if len(s) <= max {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q... (%d bytes)", cutUTF8(s, max), len(s))
}

// shortenText cuts a message to about max bytes without quoting it.
func shortenText(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return cutUTF8(s, max) + "..."
}

// cutUTF8 cuts s to at most max bytes, not inside a UTF-8 sequence.
func cutUTF8(s string, max int) string {
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	return s[:max]
}

// moreProblems ends a list cut at MaxProblems.
type moreProblems int

func (n moreProblems) Error() string {
	return fmt.Sprintf("... and %d more problems (only the first %d are shown)", int(n), MaxProblems)
}

// joinProblems orders problems by line (those without one last) and joins
// them: the error's text has one problem a line, at most MaxProblems of
// them and then how many more there are.
func joinProblems(probs []*problem) error {
	if len(probs) == 0 {
		return nil
	}
	sort.SliceStable(probs, func(i, j int) bool {
		li, lj := probs[i].line, probs[j].line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0
		}
		return li < lj
	})
	errs := make([]error, 0, min(len(probs), MaxProblems)+1)
	for _, p := range probs[:min(len(probs), MaxProblems)] {
		errs = append(errs, p)
	}
	if n := len(probs) - MaxProblems; n > 0 {
		errs = append(errs, moreProblems(n))
	}
	return errors.Join(errs...)
}

// Validate checks the config as ParseConfig does, naming fields by path
// (workload[2].fd[1].name) rather than by line.
func (c *Config) Validate() error {
	ch := &checker{}
	ch.config(c)
	return joinProblems(ch.probs)
}

// Validate checks the manifest as Parse does, naming fields by path
// (workload[2].fd[1].token) rather than by line.
func (m *Manifest) Validate() error {
	ch := &checker{}
	ch.manifest(m)
	return joinProblems(ch.probs)
}

// checker collects the problems of a config or manifest.
type checker struct {
	probs []*problem
	// present reports whether a field was set in the file, even to its
	// zero value; nil when there is no file.
	present func(path string) bool
}

func (c *checker) add(path, ctx, format string, args ...any) *problem {
	p := &problem{path: path, ctx: ctx, text: fmt.Sprintf(format, args...)}
	c.probs = append(c.probs, p)
	return p
}

func (c *checker) set(path string, nonzero bool) bool {
	return nonzero || c.present != nil && c.present(path)
}

func versionProblem(v int, isManifest bool) *problem {
	what := "written by"
	if !isManifest {
		what = "made for"
	}
	return &problem{path: "version", text: fmt.Sprintf("%s a newer luoinit: version %d, this build understands %d", what, v, Version)}
}

func (c *checker) version(v int, isManifest bool) bool {
	switch {
	case v > Version:
		c.probs = append(c.probs, versionProblem(v, isManifest))
		return false
	case v == 0 && !c.set("version", false):
		c.add("", "", "version is missing (this build writes version %d)", Version)
	case v < 1:
		c.add("version", "", "version %d is not valid: versions start at 1", v)
	}
	return true
}

func (c *checker) config(cfg *Config) {
	if !c.version(cfg.Version, false) {
		return
	}
	c.workloads(cfg.Workloads, false)
	c.network(&cfg.Network, false)
}

func (c *checker) manifest(m *Manifest) {
	if !c.version(m.Version, true) {
		return
	}
	switch {
	case m.Generation == 0 && !c.set("generation", false):
		c.add("", "", "generation is missing (the first live update is generation 1)")
	case m.Generation == 0:
		c.add("generation", "", "generation 0 is not valid: the first live update is generation 1")
	case m.Generation > math.MaxInt64:
		c.add("generation", "", "generation %d is out of range: TOML integers are signed 64-bit", m.Generation)
	}
	c.text("kernel_release", "", "kernel_release", m.KernelRelease)
	c.nextKernel(m.NextKernel)
	c.timing(m.Timing)
	c.workloads(m.Workloads, true)
	c.network(&m.Network, true)
}

// isCompatible reports whether s is a KHO compatible string, a name and a
// version: ^[a-z][a-z0-9_-]{0,46}-v[0-9]{1,9}$. Written out rather than as
// a regexp, which would be compiled at every start of PID 1.
func isCompatible(s string) bool {
	i := strings.LastIndex(s, "-v") // the version has no "-v": the last one splits
	if i < 1 || i > 47 {
		return false
	}
	name, ver := s[:i], s[i+2:]
	if name[0] < 'a' || name[0] > 'z' || len(ver) < 1 || len(ver) > 9 {
		return false
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	for _, c := range []byte(ver) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// maxCompatible bounds next_kernel.compatible (five are known today).
const maxCompatible = 32

func (c *checker) nextKernel(k NextKernel) {
	if c.text("next_kernel.release", "next_kernel", "next_kernel.release", k.Release) &&
		strings.ContainsFunc(k.Release, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		c.add("next_kernel.release", "next_kernel", "next_kernel.release %q contains a space or a control character", k.Release)
	}
	if len(k.Compatible) > maxCompatible {
		c.add("next_kernel.compatible", "next_kernel", "next_kernel.compatible has %d entries, at most %d", len(k.Compatible), maxCompatible)
		return
	}
	seen := map[string]string{}
	for _, s := range k.Compatible {
		if !isCompatible(s) {
			c.add("next_kernel.compatible", "next_kernel", "next_kernel.compatible %q is not a compatible string like \"luo-v5\"", s)
			continue
		}
		name := s[:strings.LastIndex(s, "-v")]
		if prev, dup := seen[name]; dup {
			c.add("next_kernel.compatible", "next_kernel", "next_kernel.compatible has two versions of %s: %q and %q", name, prev, s)
		}
		seen[name] = s
	}
}

func (c *checker) timing(t Timing) {
	stamps := []struct {
		key string
		s   Stamp
	}{
		{"prepare_start", t.PrepareStart},
		{"preserved", t.Preserved},
		{"first_stopped", t.FirstStopped},
		{"reboot", t.Reboot},
	}
	for _, st := range stamps {
		if st.s.MonotonicNS < 0 {
			c.add("timing."+st.key+".monotonic_ns", "timing", "%s.monotonic_ns %d is negative", st.key, st.s.MonotonicNS)
		}
	}
	// Every stamp falls between prepare_start and reboot.
	first, last := t.PrepareStart.MonotonicNS, t.Reboot.MonotonicNS
	if first > 0 && last > 0 && last < first {
		c.add("timing.reboot.monotonic_ns", "timing", "reboot is before prepare_start").deps = []string{"timing.prepare_start.monotonic_ns"}
	}
	for _, st := range stamps[1:3] {
		v := st.s.MonotonicNS
		if v <= 0 {
			continue
		}
		if first > 0 && v < first {
			c.add("timing."+st.key+".monotonic_ns", "timing", "%s is before prepare_start", st.key).deps = []string{"timing.prepare_start.monotonic_ns"}
		}
		if last > 0 && v > last {
			c.add("timing."+st.key+".monotonic_ns", "timing", "%s is after reboot", st.key).deps = []string{"timing.reboot.monotonic_ns"}
		}
	}
}

// text checks that a string can be written as TOML (valid UTF-8).
func (c *checker) text(path, ctx, what, s string) bool {
	if !utf8.ValidString(s) {
		c.add(path, ctx, "%s is not valid UTF-8", what)
		return false
	}
	return true
}

// arg checks a string that goes to the kernel as a C string.
func (c *checker) arg(path, ctx, what, s string) bool {
	if !c.text(path, ctx, what, s) {
		return false
	}
	if strings.IndexByte(s, 0) >= 0 {
		c.add(path, ctx, "%s contains a NUL byte", what)
		return false
	}
	return true
}

// wordList quotes a vocabulary for a message: "a", "b" or "c".
func wordList[T ~string](words []T) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = fmt.Sprintf("%q", w)
	}
	if len(q) < 2 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

func workloadCtx(i int, w *Workload) string {
	if handoff.ValidateWorkload(w.Name) == nil {
		return fmt.Sprintf("workload %q", w.Name)
	}
	return fmt.Sprintf("workload[%d]", i)
}

func fdCtx(wctx string, j int, fd *FD) string {
	if handoff.ValidateName(fd.Name) == nil {
		return fmt.Sprintf("%s fd %q", wctx, fd.Name)
	}
	return fmt.Sprintf("%s fd[%d]", wctx, j)
}

// workloads checks each workload, one step per group of fields, then
// the sessions they own.
func (c *checker) workloads(ws []Workload, isManifest bool) {
	names := map[string]int{} // each valid workload name: its index
	for i := range ws {
		w := &ws[i]
		wc := &workloadCheck{checker: c, w: w, i: i, wp: fmt.Sprintf("workload[%d]", i), ctx: workloadCtx(i, w), isManifest: isManifest}
		wc.name(names)
		wc.command()
		wc.modes()
		wc.process()
		wc.stopping()
		wc.session()
		for j := range w.FDs {
			wc.fd(j)
		}
	}
	c.ownedSessions(ws, isManifest)
}

// workloadCheck checks one workload; its methods are the steps of
// (*checker).workloads.
type workloadCheck struct {
	*checker
	w          *Workload
	i          int
	wp         string // its path: workload[2]
	ctx        string // who it is about: workload "kv"
	isManifest bool

	// what the fds seen so far use: each valid name, number and token,
	// with its index in w.FDs
	fdNames   map[string]int
	fdNumbers map[int]int
	fdTokens  map[uint64]int
}

// name checks the workload's name, unique among names.
func (wc *workloadCheck) name(names map[string]int) {
	w, wp := wc.w, wc.wp
	// The rule the handoff wire and LUO's session names need: a name
	// accepted here is never refused after the kexec.
	switch err := handoff.ValidateWorkload(w.Name); {
	case w.Name == "":
		wc.add(wp+".name", wc.ctx, "name is missing")
	case err != nil:
		wc.add(wp+".name", wc.ctx, "%v", err)
	default:
		if first, dup := names[w.Name]; dup {
			wc.add(wp+".name", "", "workload name %q is used twice", w.Name).ref = fmt.Sprintf("workload[%d].name", first)
		} else {
			names[w.Name] = wc.i
		}
	}
}

// command checks what runs: argv, env and dir.
func (wc *workloadCheck) command() {
	w, wp, ctx := wc.w, wc.wp, wc.ctx
	switch {
	case w.Argv == nil && !wc.set(wp+".argv", false):
		wc.add(wp+".argv", ctx, "argv is missing")
	case len(w.Argv) == 0:
		wc.add(wp+".argv", ctx, "argv is empty")
	default:
		for k, a := range w.Argv {
			wc.arg(fmt.Sprintf("%s.argv[%d]", wp, k), ctx, fmt.Sprintf("argv[%d]", k), a)
		}
		if a := w.Argv[0]; !filepath.IsAbs(a) {
			wc.add(wp+".argv[0]", ctx, "argv[0] %q is not an absolute path", a)
		}
	}
	for k, e := range w.Env {
		ep := fmt.Sprintf("%s.env[%d]", wp, k)
		what := fmt.Sprintf("env[%d]", k)
		if !wc.arg(ep, ctx, what, e) {
			continue
		}
		if key, _, ok := strings.Cut(e, "="); !ok || key == "" {
			wc.add(ep, ctx, "%s %q is not KEY=value", what, e)
		}
	}
	if w.Dir != "" && wc.arg(wp+".dir", ctx, "dir", w.Dir) && !filepath.IsAbs(w.Dir) {
		wc.add(wp+".dir", ctx, "dir %q is not an absolute path", w.Dir)
	}
}

// modes checks the words that say how the fds travel: handoff, ready,
// sessions and fdstore_max.
func (wc *workloadCheck) modes() {
	w, wp, ctx := wc.w, wc.wp, wc.ctx
	switch w.Handoff {
	case HandoffSocket, HandoffPidfd, HandoffFDStore, HandoffNone:
	case "":
		wc.add(wp+".handoff", ctx, "handoff is missing: it must be one of %s", wordList(handoffModes))
	default:
		wc.add(wp+".handoff", ctx, "handoff %q: it must be one of %s", w.Handoff, wordList(handoffModes))
	}
	switch w.Ready {
	case "", ReadyHandoff, ReadyNotify:
	default:
		wc.add(wp+".ready", ctx, "ready %q: it must be %q or %q", w.Ready, ReadyHandoff, ReadyNotify)
	}
	switch w.Sessions {
	case "", SessionsLeave, SessionsRetrieve:
	default:
		wc.add(wp+".sessions", ctx, "sessions %q: it must be %q or %q", w.Sessions, SessionsLeave, SessionsRetrieve)
	}
	if w.FDStoreMax < 0 || w.FDStoreMax > FDStoreMaxLimit {
		wc.add(wp+".fdstore_max", ctx, "fdstore_max %d: it must be 0 to %d", w.FDStoreMax, FDStoreMaxLimit)
	}
	if w.Handoff == HandoffNone && len(w.FDs) > 0 {
		wc.add(wp+".handoff", ctx, "handoff %q takes no [[workload.fd]]: luoinit keeps no fds for it", HandoffNone)
	}
}

// process checks who the workload is: pid, uid, gid and pidfile.
func (wc *workloadCheck) process() {
	w, wp, ctx := wc.w, wc.wp, wc.ctx
	if wc.set(wp+".pid", w.PID != 0) && !ValidPID(w.PID) {
		wc.add(wp+".pid", ctx, "pid %d is not valid: pids are 1 to %d", w.PID, PIDMax)
	}
	if w.UID == noID {
		wc.add(wp+".uid", ctx, "uid %d is not valid: the kernel reads (uid_t)-1 as \"unchanged\", which would leave the workload root", w.UID)
	}
	if w.GID == noID {
		wc.add(wp+".gid", ctx, "gid %d is not valid: the kernel reads (gid_t)-1 as \"unchanged\"", w.GID)
	}
	if w.PIDFile != "" && wc.arg(wp+".pidfile", ctx, "pidfile", w.PIDFile) && !filepath.IsAbs(w.PIDFile) {
		wc.add(wp+".pidfile", ctx, "pidfile %q is not an absolute path", w.PIDFile)
	}
	if w.PID != 0 && w.PIDFile != "" {
		wc.add(wp+".pidfile", ctx, "set pid or pidfile, not both").deps = []string{wp + ".pid"}
	}
	if w.Handoff == HandoffPidfd && w.PID == 0 && w.PIDFile == "" {
		wc.add(wp+".handoff", ctx, "handoff %q needs pid or pidfile", HandoffPidfd).deps = []string{wp + ".pid", wp + ".pidfile"}
	}
}

// stopping checks how the workload stops and restarts.
func (wc *workloadCheck) stopping() {
	w, wp, ctx := wc.w, wc.wp, wc.ctx
	switch w.Stop {
	case "", StopTerm, StopSigstop:
	default:
		wc.add(wp+".stop", ctx, "stop %q: it must be %q or %q", w.Stop, StopTerm, StopSigstop)
	}
	if w.StopTimeout.Duration < 0 {
		wc.add(wp+".stop_timeout", ctx, "stop_timeout %v is negative", w.StopTimeout.Duration)
	}
	if len(w.StopCommand) > 0 || wc.set(wp+".stop_command", false) {
		if len(w.StopCommand) == 0 {
			wc.add(wp+".stop_command", ctx, "stop_command is empty: leave it out, or give the program and its arguments")
		} else {
			for k, a := range w.StopCommand {
				wc.arg(fmt.Sprintf("%s.stop_command[%d]", wp, k), ctx, fmt.Sprintf("stop_command[%d]", k), a)
			}
			if a := w.StopCommand[0]; !filepath.IsAbs(a) {
				wc.add(wp+".stop_command[0]", ctx, "stop_command[0] %q is not an absolute path", a)
			}
		}
	}
	switch w.Restart {
	case "", RestartNever, RestartOnFailure:
	default:
		wc.add(wp+".restart", ctx, "restart %q: it must be %q or %q", w.Restart, RestartNever, RestartOnFailure)
	}
}

// session checks the workload's luoinit session (a manifest's only) and
// that sessions = "retrieve" has fds handed over to go with.
func (wc *workloadCheck) session() {
	w, wp, ctx := wc.w, wc.wp, wc.ctx
	if wc.isManifest {
		// A workload's session is named after it, nothing else: PID 1
		// must not be led to retrieve (and hand out, and FINISH) the
		// freeze record's session or another program's. Names are
		// unique, so sessions are too.
		switch {
		case w.Handoff == HandoffNone:
			if w.FDSession != "" {
				wc.add(wp+".session", ctx, "handoff %q has no session of luoinit's, but session %q is set", HandoffNone, w.FDSession).deps = []string{wp + ".handoff"}
			}
		case w.FDSession == "":
			wc.add(wp+".session", ctx, "session is missing")
		case handoff.ValidateWorkload(w.Name) == nil && w.FDSession != SessionName(w.Name):
			wc.add(wp+".session", ctx, "session %s: a workload's session must be %q", shorten(w.FDSession, 70), SessionName(w.Name)).deps = []string{wp + ".name"}
		}
	} else if wc.set(wp+".session", w.FDSession != "") {
		wc.add(wp+".session", ctx, "a config cannot set session; the manifest gets it from prepare")
	}

	if w.Handoff == HandoffNone && w.Sessions == SessionsRetrieve {
		wc.add(wp+".sessions", ctx, "sessions %q needs a handoff that hands fds over (%q, %q or %q); with handoff %q the workload retrieves its own sessions (sessions = %q)",
			SessionsRetrieve, HandoffSocket, HandoffPidfd, HandoffFDStore, HandoffNone, SessionsLeave).deps = []string{wp + ".handoff"}
	}
}

// ownedSessions checks the sessions workloads own: only a manifest has
// them; each name is a valid session name outside luoinit's namespace,
// unique in the manifest, and no workload's luoinit session; via is known.
func (c *checker) ownedSessions(ws []Workload, isManifest bool) {
	taken := map[string]string{} // session name -> the field that has it
	for i := range ws {
		if s := ws[i].FDSession; s != "" {
			taken[s] = fmt.Sprintf("workload[%d].session", i)
		}
	}
	for i := range ws {
		w := &ws[i]
		wp := fmt.Sprintf("workload[%d]", i)
		ctx := workloadCtx(i, w)
		for j, o := range w.OwnedSessions {
			op := fmt.Sprintf("%s.owned_session[%d]", wp, j)
			if !isManifest {
				c.add(op, ctx, "a config cannot set owned_session; the manifest gets it from prepare")
				continue
			}
			if err := CheckOwnedSession(w, o.Name); err != nil {
				c.add(op+".name", ctx, "owned %v", err)
			} else if first, dup := taken[o.Name]; dup {
				c.add(op+".name", ctx, "owned session %q is already in the manifest", o.Name).ref = first
			} else {
				taken[o.Name] = op + ".name"
			}
			switch o.Via {
			case ViaPush, ViaFDStore, ViaProc:
			default:
				c.add(op+".via", ctx, "owned session %q: via %q: it must be one of %s", o.Name, o.Via, wordList(sessionVias))
			}
		}
	}
}

// fd checks the workload's fd j: its name and number, then what only a
// manifest has (or that a config has none of it).
func (wc *workloadCheck) fd(j int) {
	if wc.fdNames == nil {
		wc.fdNames, wc.fdNumbers, wc.fdTokens = map[string]int{}, map[int]int{}, map[uint64]int{}
	}
	fd := &wc.w.FDs[j]
	fc := &fdCheck{workloadCheck: wc, fd: fd, j: j}
	fc.name()
	fc.number()
	fc.size()
	if !wc.isManifest {
		fc.configOnly()
		return
	}
	fc.kind()
	fc.drop()
}

// fdCheck checks one fd; its methods are the steps of (*workloadCheck).fd.
type fdCheck struct {
	*workloadCheck
	fd *FD
	j  int
}

// path is the fd's path, workload[0].fd[1]; made only for a problem, as
// who is: a manifest of thousands of fds checks each on the restore path.
func (fc *fdCheck) path() string { return fc.wp + ".fd[" + strconv.Itoa(fc.j) + "]" }

// who is who a problem is about: workload "kv" fd "arena".
func (fc *fdCheck) who() string { return fdCtx(fc.workloadCheck.ctx, fc.j, fc.fd) }

// name checks the fd's name, unique in its workload.
func (fc *fdCheck) name() {
	fd := fc.fd
	switch err := handoff.ValidateName(fd.Name); {
	case fd.Name == "":
		fc.add(fc.path()+".name", fc.who(), "fd name is missing")
	case err != nil:
		fc.add(fc.path()+".name", fc.who(), "%v", err)
	default:
		if first, dup := fc.fdNames[fd.Name]; dup {
			fc.add(fc.path()+".name", fc.workloadCheck.ctx, "fd name %q is used twice", fd.Name).ref = fmt.Sprintf("%s.fd[%d].name", fc.wp, first)
		} else {
			fc.fdNames[fd.Name] = fc.j
		}
	}
}

// number checks the fd's number: needed with handoff "pidfd" and only
// there, valid, and unique in its workload.
func (fc *fdCheck) number() {
	fd, w, wp := fc.fd, fc.w, fc.wp
	pidfd := w.Handoff == HandoffPidfd
	switch {
	case fd.Number == nil:
		if pidfd {
			fc.add(fc.path()+".number", fc.who(), "handoff %q needs the fd's number", HandoffPidfd).deps = []string{wp + ".handoff"}
		}
	case !pidfd:
		if how, ok := map[HandoffMode]string{
			HandoffSocket:  "the workload sends its fds",
			HandoffFDStore: "the workload stores its fds with PID 1",
			HandoffNone:    "luoinit keeps no fds",
		}[w.Handoff]; ok {
			fc.add(fc.path()+".number", fc.who(), "number is only for handoff %q: in %s mode %s", HandoffPidfd, w.Handoff, how).deps = []string{wp + ".handoff"}
		}
	case !validFDNumber(*fd.Number):
		fc.add(fc.path()+".number", fc.who(), "number %d is not a valid fd: fds are 0 to %d", *fd.Number, math.MaxInt32)
	default:
		if first, dup := fc.fdNumbers[*fd.Number]; dup {
			fc.add(fc.path()+".number", fc.who(), "number %d already used by %s", *fd.Number, fdCtx(fc.workloadCheck.ctx, first, &w.FDs[first])).ref = fmt.Sprintf("%s.fd[%d].number", wp, first)
		} else {
			fc.fdNumbers[*fd.Number] = fc.j
		}
	}
}

// size checks a memfd PID 1 creates: handoff "fdstore" only (it goes
// into the fd store), more than 0 and at most MaxMemfdSize.
func (fc *fdCheck) size() {
	fd, w := fc.fd, fc.w
	switch {
	case fd.Size == 0:
		if fc.set(fc.path()+".size", false) {
			fc.add(fc.path()+".size", fc.who(), "size is 0: leave it out, or give the memfd's size")
		}
	case w.Handoff != HandoffFDStore:
		fc.add(fc.path()+".size", fc.who(), "size is only for handoff %q: PID 1 puts the memfd it creates in the workload's fd store", HandoffFDStore).deps = []string{fc.wp + ".handoff"}
	case fd.Size < 0 || fd.Size > MaxMemfdSize:
		fc.add(fc.path()+".size", fc.who(), "size %d: it must be 1 byte to %s", int64(fd.Size), mustText(MaxMemfdSize))
	}
}

func mustText(b ByteSize) string {
	t, _ := b.MarshalText()
	return string(t)
}

// configOnly refuses in a config what prepare writes in the manifest.
func (fc *fdCheck) configOnly() {
	fd := fc.fd
	for _, f := range []struct {
		key string
		set bool
	}{
		{"token", fd.Token != 0},
		{"kind", fd.Kind != ""},
		{"dropped", fd.Dropped},
		{"drop_reason", fd.DropReason != ""},
	} {
		if fc.set(fc.path()+"."+f.key, f.set) {
			fc.add(fc.path()+"."+f.key, fc.who(), "a config cannot set %s; the manifest gets it from prepare", f.key)
		}
	}
}

// kind checks a manifest fd's kind and drop_reason text.
func (fc *fdCheck) kind() {
	fd := fc.fd
	if fd.Kind != "" && !ValidKind(fd.Kind) {
		fc.add(fc.path()+".kind", fc.who(), "kind %s: it must be one of %s", shorten(fd.Kind, 40), kindList())
	}
	if fd.DropReason != "" {
		fc.text(fc.path()+".drop_reason", fc.who(), "drop_reason", fd.DropReason)
	}
}

// drop checks that a manifest fd is either dropped (optional, no token)
// or preserved (a token, unique in its workload's session).
func (fc *fdCheck) drop() {
	fd := fc.fd
	switch {
	case fd.Dropped:
		if !fd.Optional {
			fc.add(fc.path()+".dropped", fc.who(), "dropped, but the fd is not optional").deps = []string{fc.path() + ".optional"}
		}
		if fd.Token != 0 {
			fc.add(fc.path()+".token", fc.who(), "token %d on a dropped fd", fd.Token).deps = []string{fc.path() + ".dropped"}
		}
	case fd.DropReason != "":
		fc.add(fc.path()+".drop_reason", fc.who(), "drop_reason on an fd that is not dropped").deps = []string{fc.path() + ".dropped"}
		fallthrough
	default:
		if fd.Token == 0 {
			fc.add(fc.path()+".token", fc.who(), "token is missing (only a dropped fd has none)").deps = []string{fc.path() + ".dropped"}
			break
		}
		if fd.Token > math.MaxInt64 {
			fc.add(fc.path()+".token", fc.who(), "token %d is out of range: TOML integers are signed 64-bit", fd.Token)
			break
		}
		if first, dup := fc.fdTokens[fd.Token]; dup {
			fc.add(fc.path()+".token", fc.who(), "token %d already used by fd %q in session %q", fd.Token, fc.w.FDs[first].Name, fc.w.FDSession).ref = fmt.Sprintf("%s.fd[%d].token", fc.wp, first)
		} else {
			fc.fdTokens[fd.Token] = fc.j
		}
	}
}
