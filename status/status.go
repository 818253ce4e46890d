// Package status owns luoinit's state file, /run/luoinit/state: the
// state of the live update as PID 1 and `luoinit prepare` see it, the kind of boot,
// the generation, the last blackout and, per workload, what was handed
// back and what was lost. PID 1 and prepare write it; `luoinit status`
// and scripts read it.
//
//	st, err := status.Read(wellknown.RunDir)   // os.ErrNotExist: luoinit did not boot this system
//	st.State = status.Prepared
//	err = status.Write(wellknown.RunDir, st)   // atomic: readers see the old file or the new one
//	err = status.Wait(ctx, wellknown.RunDir, status.Finished)
//
// The file is text, one record a line, so that a shell can grep it:
//
//	state=finished
//	boot=updated
//	generation=2
//	format=1
//	lost=0
//	blackout_ns=2412000000
//	workload name="kv" handoff="socket" pid=41 fds=2 fds_delivered=2 ready_boottime_ns=1830000000
//	lost_fd workload="kv" fd="heap" session="luoinit.kv" token=3 error="..."
//	session workload="vmm" name="guest-ram" via="proc" mode="leave" result="taken" pid=52
//
// A global line is key=value; a record line is a kind word and then
// key=value fields. Strings are Go-quoted (strconv.Quote), numbers are
// decimal. A reader ignores keys and kinds it does not know, and refuses
// a format newer than its own.
package status

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/luoinit/luoinit/atomicfile"
)

// Format is the version of the file this build writes and reads.
const Format = 1

// File is the state file's name in its directory (wellknown.RunDir).
const File = "state"

// The states. normal, then prepared and frozen while `luoinit prepare`
// runs; in the next kernel restoring, then finished or degraded; failed
// when PID 1 could not get as far as starting anything.
const (
	Normal    State = "normal"    // running; no live update in progress (a cold boot, or after cancel)
	Prepared  State = "prepared"  // prepare preserved everything and loaded the next kernel; workloads run
	Frozen    State = "frozen"    // prepare is stopping the workloads to reboot into the next kernel
	Restoring State = "restoring" // the next kernel's PID 1 is retrieving fds and handing them over
	Finished  State = "finished"  // every fd and session delivered (or left to its owner), nothing lost
	Degraded  State = "degraded"  // data was lost, or could not be delivered to its workload
	// Failed: PID 1 stopped before it started any workload (its root
	// did not come, say) and took its luoinit.fatal= action; Reason says
	// why. On a live update nothing was retrieved: the sessions are still
	// the kernel's.
	Failed State = "failed"
)

// State is where live update stands on this system: one of States.
type State string

// States lists the states, for messages and flags.
var States = []State{Normal, Prepared, Frozen, Restoring, Finished, Degraded, Failed}

// Boot is how this system came up: BootNormal or BootUpdated.
type Boot string

// Boot kinds: the kernel command line says which (luoinit.update=, see
// package carry); the state says how the boot went.
const (
	BootNormal  Boot = "normal"  // cold boot: no live update marker
	BootUpdated      = "updated" // this boot came through a live update
)

// Results of a workload-owned session after the kexec.
const (
	// SessionDelivered: sessions = "retrieve"; PID 1 retrieved it and the
	// owner acknowledged its session fd.
	SessionDelivered = "delivered"
	// SessionUndelivered: sessions = "retrieve"; PID 1 retrieved it but the
	// owner did not take it; PID 1 keeps it, unfinished, for its next start.
	SessionUndelivered = "undelivered"
	// SessionTaken: sessions = "leave"; a process other than PID 1 was
	// seen holding it.
	SessionTaken = "taken"
	// SessionNotSeen: sessions = "leave"; no process was seen holding it
	// within the handoff timeout. Either its owner retrieved and closed it
	// between two looks, or the owner left it: the kernel then keeps it
	// until the next live update.
	SessionNotSeen = "not-seen"
	// SessionLost: it did not come back from the kernel.
	SessionLost = "lost"
)

// Status is the content of the state file.
type Status struct {
	State      State  `json:"state"`
	Boot       Boot   `json:"boot"`
	Generation uint64 `json:"generation"` // live updates this system went through (0 on a cold boot)
	Lost       int    `json:"lost"`       // fds and sessions lost in this boot
	// Reason says why a live update's own state did not come back (boot
	// updated, state degraded, nothing restored), or why PID 1 failed
	// (state failed); "" otherwise.
	Reason string `json:"reason,omitempty"`

	// Figures of the restore, once every first handoff ended.
	Restore         time.Duration `json:"restore_ns,omitempty"`             // init start -> every fd retrieved
	HandoffDone     time.Duration `json:"handoff_done_ns,omitempty"`        // init start -> every first handoff ended
	Network         time.Duration `json:"network_ns,omitempty"`             // applying the network
	NetworkChanges  int           `json:"network_changes,omitempty"`        //
	NetworkFailures int           `json:"network_failures,omitempty"`       //
	LastReady       time.Duration `json:"last_ready_boottime_ns,omitempty"` // CLOCK_BOOTTIME when the last workload was back in service
	// The blackout of the last live update: Blackout = OldKernel (first
	// workload stopped -> reboot call, CLOCK_MONOTONIC of the old kernel)
	// + LastReady (new kernel start -> last workload back, CLOCK_BOOTTIME).
	OldKernelBlackout time.Duration `json:"old_kernel_blackout_ns,omitempty"`
	Blackout          time.Duration `json:"blackout_ns,omitempty"`

	Workloads []Workload `json:"workloads,omitempty"`

	// Init is CLOCK_BOOTTIME when PID 1 started, and Phases the timeline
	// of the boot (init, mounted, manifest, device, fds_retrieved, record,
	// network, and per workload exec:NAME, ack:NAME, finish:NAME).
	Init   time.Duration `json:"init_boottime_ns,omitempty"`
	Phases []Phase       `json:"phases,omitempty"`

	// FromKernel and ToKernel are the releases the last live update went
	// from and to ("updated from A to B"); empty on a cold boot.
	FromKernel string `json:"from_kernel,omitempty"`
	ToKernel   string `json:"to_kernel,omitempty"`
}

// Release is a kernel release for a message: "(unknown)" when empty.
func Release(r string) string {
	if r == "" {
		return "(unknown)"
	}
	return r
}

// Phase is one step of a boot, stamped with CLOCK_BOOTTIME.
type Phase struct {
	Name string        `json:"name"`
	At   time.Duration `json:"boottime_ns"`
}

// Workload is what one workload got back in this boot.
type Workload struct {
	Name         string        `json:"name"`
	Handoff      string        `json:"handoff"`
	Pid          int           `json:"pid,omitempty"`
	FDs          int           `json:"fds"`           // fds luoinit had preserved for it
	FDsDelivered int           `json:"fds_delivered"` // handed over and acknowledged
	Ready        time.Duration `json:"ready_boottime_ns,omitempty"`
	Error        string        `json:"error,omitempty"` // why its handoff did not complete
	LostFDs      []LostFD      `json:"lost_fds,omitempty"`
	Sessions     []Session     `json:"sessions,omitempty"` // the LUO sessions it owns
}

// LostFD is a preserved fd that did not come back.
type LostFD struct {
	FD      string `json:"fd"`
	Session string `json:"session"`
	Token   uint64 `json:"token"`
	Error   string `json:"error"`
}

// Session is a LUO session a workload owns, and what became of it.
type Session struct {
	Name   string `json:"name"`
	Via    string `json:"via"`    // how prepare found it: push, fdstore, proc
	Mode   string `json:"mode"`   // manifest.SessionsLeave or SessionsRetrieve
	Result string `json:"result"` // Session* above
	Pid    int    `json:"pid,omitempty"`
	Error  string `json:"error,omitempty"`
}

// A field is one key=value of the file bound to where its value lives:
// the lists below are the one place that says which keys a line has, in
// which order, and how each value is written and read back.
type field struct {
	key      string
	optional bool                  // written only when not zero
	get      func() (string, bool) // the value as written, and whether it is zero
	set      func(string) error    // reads a value back
}

// value binds key to *p: written with format, read back with parse, and
// zero when *p is its type's zero value.
func value[T comparable](key string, p *T, format func(T) string, parse func(string) (T, error)) field {
	var zero T
	return field{key: key,
		get: func() (string, bool) { return format(*p), *p == zero },
		set: func(v string) error {
			x, err := parse(v)
			if err == nil {
				*p = x
			}
			return err
		},
	}
}

// text is a Go-quoted string (parseFields has unquoted it).
func text(key string, p *string) field {
	return value(key, p, strconv.Quote, func(v string) (string, error) { return v, nil })
}

// number, unsigned and nanos are decimal integers.
func number(key string, p *int) field { return value(key, p, strconv.Itoa, strconv.Atoi) }

func unsigned(key string, p *uint64) field {
	return value(key, p,
		func(n uint64) string { return strconv.FormatUint(n, 10) },
		func(v string) (uint64, error) { return strconv.ParseUint(v, 10, 64) })
}

func nanos(key string, p *time.Duration) field {
	return value(key, p,
		func(d time.Duration) string { return strconv.FormatInt(int64(d), 10) },
		func(v string) (time.Duration, error) {
			n, err := strconv.ParseInt(v, 10, 64)
			return time.Duration(n), err
		})
}

// omitZero makes f optional: left off the line when its value is zero.
func (f field) omitZero() field {
	f.optional = true
	return f
}

// figures lists the numeric global lines, in the order the file has them,
// each written only when not zero.
func (st *Status) figures() []field {
	return []field{
		nanos("restore_ns", &st.Restore),
		nanos("handoff_done_ns", &st.HandoffDone),
		nanos("network_ns", &st.Network),
		number("network_changes", &st.NetworkChanges),
		number("network_failures", &st.NetworkFailures),
		nanos("last_ready_boottime_ns", &st.LastReady),
		nanos("old_kernel_blackout_ns", &st.OldKernelBlackout),
		nanos("blackout_ns", &st.Blackout),
		nanos("init_boottime_ns", &st.Init),
	}
}

// The fields of each record line, after its kind word. A lost_fd or
// session line starts with workload=, the name of its workload.

func (p *Phase) fields() []field {
	return []field{text("name", &p.Name), nanos("boottime_ns", &p.At)}
}

func (w *Workload) fields() []field {
	return []field{
		text("name", &w.Name),
		text("handoff", &w.Handoff),
		number("pid", &w.Pid),
		number("fds", &w.FDs),
		number("fds_delivered", &w.FDsDelivered),
		nanos("ready_boottime_ns", &w.Ready).omitZero(),
		text("error", &w.Error).omitZero(),
	}
}

func (l *LostFD) fields() []field {
	return []field{
		text("fd", &l.FD),
		text("session", &l.Session),
		unsigned("token", &l.Token),
		text("error", &l.Error),
	}
}

func (s *Session) fields() []field {
	return []field{
		text("name", &s.Name),
		text("via", &s.Via),
		text("mode", &s.Mode),
		text("result", &s.Result),
		number("pid", &s.Pid),
		text("error", &s.Error).omitZero(),
	}
}

// Path returns the state file's path in dir.
func Path(dir string) string { return filepath.Join(dir, File) }

// Terminal reports whether state ends a restore: nothing changes it but
// the next `luoinit prepare`.
func Terminal(state State) bool { return state == Finished || state == Degraded || state == Failed }

// Valid reports whether state is one of States.
func Valid(state State) bool {
	for _, s := range States {
		if s == state {
			return true
		}
	}
	return false
}

// Write writes st to dir's state file atomically, creating dir.
func Write(dir string, st *Status) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	if err := atomicfile.WriteBytes(Path(dir), 0o644, st.Marshal()); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	return nil
}

// maxSize bounds what Read reads: a state file is written by luoinit, but
// /run may be writable by others and a reader must not be made to
// allocate without limit.
const maxSize = 4 << 20

// Read reads dir's state file. A missing file gives an error wrapping
// os.ErrNotExist: luoinit neither booted this system nor prepared on it.
func Read(dir string) (*Status, error) {
	f, err := os.Open(Path(dir))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w", Path(dir), err)
	}
	if len(b) > maxSize {
		return nil, fmt.Errorf("state file %s: larger than %d bytes", Path(dir), maxSize)
	}
	st, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w", Path(dir), err)
	}
	return st, nil
}

// Marshal writes st in the file format. Parse(st.Marshal()) equals st.
func (st *Status) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "state=%s\nboot=%s\ngeneration=%d\nformat=%d\nlost=%d\n", bare(string(st.State)), bare(string(st.Boot)), st.Generation, Format, st.Lost)
	if st.FromKernel != "" || st.ToKernel != "" {
		fmt.Fprintf(&b, "from_kernel=%s\nto_kernel=%s\n", bare(st.FromKernel), bare(st.ToKernel))
	}
	if st.Reason != "" {
		fmt.Fprintf(&b, "reason=%s\n", q(st.Reason))
	}
	for _, f := range st.figures() {
		if v, zero := f.get(); !zero {
			fmt.Fprintf(&b, "%s=%s\n", f.key, v)
		}
	}
	for i := range st.Phases {
		writeRecord(&b, "phase", st.Phases[i].fields())
	}
	for i := range st.Workloads {
		w := &st.Workloads[i]
		writeRecord(&b, "workload", w.fields())
		owner := text("workload", &w.Name)
		for j := range w.LostFDs {
			writeRecord(&b, "lost_fd", append([]field{owner}, w.LostFDs[j].fields()...))
		}
		for j := range w.Sessions {
			writeRecord(&b, "session", append([]field{owner}, w.Sessions[j].fields()...))
		}
	}
	return b.Bytes()
}

// writeRecord writes one record line: kind, then its fields.
func writeRecord(b *bytes.Buffer, kind string, fields []field) {
	b.WriteString(kind)
	for _, f := range fields {
		if v, zero := f.get(); !zero || !f.optional {
			fmt.Fprintf(b, " %s=%s", f.key, v)
		}
	}
	b.WriteByte('\n')
}

func q(s string) string { return strconv.Quote(s) }

// bare keeps a global value on its line, quoted unless it is a plain word
// (the state words always are): empty, a blank, '=', or anything that
// strconv.Quote would escape (a quote, a backslash, a CR or another
// control character, invalid UTF-8) is quoted.
func bare(s string) string {
	if quoted := strconv.Quote(s); s == "" || strings.ContainsAny(s, " =") || quoted[1:len(quoted)-1] != s {
		return quoted
	}
	return s
}

// ErrNewerFormat is wrapped when the file was written by a newer luoinit.
var ErrNewerFormat = errors.New("state file written by a newer luoinit")

// Parse reads the file format. Unknown keys and record kinds are skipped.
func Parse(data []byte) (*Status, error) {
	p := &parser{st: &Status{}, byName: map[string]int{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxSize)
	for n := 1; sc.Scan(); n++ {
		if err := p.line(sc.Text()); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if p.st.State == "" {
		return nil, errors.New("no state= line")
	}
	return p.st, nil
}

// parser is the state of Parse: the status so far, and the index of each
// workload line read, by name.
type parser struct {
	st     *Status
	byName map[string]int
}

// line reads one line: nothing, a global key=value or a record.
func (p *parser) line(line string) error {
	if line == "" {
		return nil
	}
	kind, rest, hasFields := strings.Cut(line, " ")
	if !hasFields || strings.Contains(kind, "=") {
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			return fmt.Errorf("%q is not key=value", line)
		}
		return p.st.global(key, val)
	}
	vals, err := parseFields(rest)
	if err != nil {
		return err
	}
	if err := p.record(kind, vals); err != nil {
		return fmt.Errorf("%s: %w", kind, err)
	}
	return nil
}

// record adds the record of kind whose fields are vals.
func (p *parser) record(kind string, vals map[string]string) error {
	switch kind {
	case "workload":
		var w Workload
		if err := fill(w.fields(), vals); err != nil {
			return err
		}
		if _, dup := p.byName[w.Name]; dup {
			return fmt.Errorf("workload %q twice", w.Name)
		}
		p.byName[w.Name] = len(p.st.Workloads)
		p.st.Workloads = append(p.st.Workloads, w)
	case "phase":
		var ph Phase
		if err := fill(ph.fields(), vals); err != nil {
			return err
		}
		p.st.Phases = append(p.st.Phases, ph)
	case "lost_fd":
		var l LostFD
		w, err := p.owner(vals, l.fields())
		if err != nil {
			return err
		}
		w.LostFDs = append(w.LostFDs, l)
	case "session":
		var s Session
		w, err := p.owner(vals, s.fields())
		if err != nil {
			return err
		}
		w.Sessions = append(w.Sessions, s)
	}
	return nil
}

// owner returns the workload a lost_fd or session record names, read
// before it, and fills the record's fields.
func (p *parser) owner(vals map[string]string, fields []field) (*Workload, error) {
	name := vals["workload"]
	i, ok := p.byName[name]
	if !ok {
		return nil, fmt.Errorf("record for workload %q before its workload line", name)
	}
	if err := fill(fields, vals); err != nil {
		return nil, err
	}
	return &p.st.Workloads[i], nil
}

// fill sets each of fields whose key vals has.
func fill(fields []field, vals map[string]string) error {
	for _, f := range fields {
		if v, ok := vals[f.key]; ok {
			if err := f.set(v); err != nil {
				return fmt.Errorf("%s: %w", f.key, err)
			}
		}
	}
	return nil
}

// global sets one key=value line.
func (st *Status) global(key, val string) error {
	if strings.HasPrefix(val, `"`) {
		s, err := strconv.Unquote(val)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		val = s
	}
	var err error
	switch key {
	case "state":
		st.State = State(val)
	case "boot":
		st.Boot = Boot(val)
	case "generation":
		err = unsigned(key, &st.Generation).set(val)
	case "format":
		var v int
		if err = number(key, &v).set(val); err == nil && v > Format {
			return fmt.Errorf("%w: format %d, this build reads %d", ErrNewerFormat, v, Format)
		}
	case "lost":
		err = number(key, &st.Lost).set(val)
	case "from_kernel":
		st.FromKernel = val
	case "to_kernel":
		st.ToKernel = val
	case "reason":
		st.Reason = val
	default:
		for _, f := range st.figures() {
			if f.key == key {
				err = f.set(val)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// parseFields splits `key=value key="quoted value" ...`.
func parseFields(s string) (map[string]string, error) {
	out := map[string]string{}
	for s != "" {
		key, rest, ok := strings.Cut(s, "=")
		if !ok || key == "" || strings.ContainsAny(key, " \"") {
			return nil, fmt.Errorf("field %q is not key=value", s)
		}
		var val string
		if strings.HasPrefix(rest, `"`) {
			quoted, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return nil, fmt.Errorf("field %s: bad quoted value", key)
			}
			val, _ = strconv.Unquote(quoted)
			rest = rest[len(quoted):]
		} else {
			val, rest, _ = strings.Cut(rest, " ")
			rest = " " + rest
			if rest == " " {
				rest = ""
			}
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("field %s twice", key)
		}
		out[key] = val
		switch {
		case rest == "":
			s = ""
		case rest[0] == ' ':
			s = rest[1:]
		default:
			return nil, fmt.Errorf("field %s: no space after its value", key)
		}
	}
	return out, nil
}
