// Package manifest reads and writes luoinit's two TOML files: the config,
// which declares the workloads, and the manifest, which luoinit prepare
// seals into its own LUO session (package carry) and PID 1 reads after
// the kexec. A manifest is the config plus what preservation produced:
//
//	cfg, err := manifest.LoadConfig("/etc/luoinit/config.toml")
//	m := cfg.NewManifest()      // sessions named, tokens still to assign
//	m.Workloads[0].FDs[0].Token = 1
//	b, err := m.Marshal()      // prepare seals b into a memfd
//	m, err = manifest.Parse(b) // PID 1, in the next kernel
//
// Parsing validates: every problem found is reported, one per line, with
// the file's line number where it can be found (see docs/manifest.md).
//
// Three readers, a file each: decode.go reads through the TOML library
// and validates (validate.go); fast.go reads the subset of TOML that
// Marshal writes in one pass, tried first on a manifest on PID 1's restore
// path, and hands anything else to the library; lines.go finds the line
// of a field for the error messages, since the library gives none.
package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"

	"github.com/luoinit/luoinit/atomicfile"
	"github.com/luoinit/luoinit/carry"
	"github.com/luoinit/luoinit/wellknown"
	"golang.org/x/sys/unix"
)

// Version is the format version this build writes and understands. A
// reader refuses a file with a newer version.
const Version = 1

// sessionNameMax is the longest LUO session name in bytes (luo.NameMax).
const sessionNameMax = 63

// PIDMax is the largest pid Linux hands out (PID_MAX_LIMIT on 64-bit; a
// system's /proc/sys/kernel/pid_max is at most this).
const PIDMax = 4 << 20

// ValidPID reports whether pid can name a process: 1 to PIDMax. A larger
// value would be truncated to 32 bits by the kernel and name another one.
func ValidPID(pid int) bool { return pid >= 1 && pid <= PIDMax }

// validFDNumber reports whether n can be an fd number: 0 to MaxInt32 (the
// kernel's fd arguments are C ints).
func validFDNumber(n int) bool { return n >= 0 && n <= math.MaxInt32 }

// noID is (uid_t)-1, which setresuid and setgroups read as "unchanged".
const noID = math.MaxUint32

// HandoffMode is how prepare gets a workload's fds and how PID 1 hands
// them back after the kexec (Workload.Handoff).
type HandoffMode string

// The handoff modes.
const (
	// HandoffSocket: the workload pushes its fds over prepare's socket and
	// pulls them back over the socket at LUOINIT_HANDOFF_FD.
	HandoffSocket HandoffMode = "socket"
	// HandoffPidfd: prepare takes the fds from the running process with
	// pidfd_getfd; they come back over the handoff socket.
	HandoffPidfd HandoffMode = "pidfd"
	// HandoffFDStore: the workload keeps its fds in PID 1's fd store
	// (sd_notify FDSTORE=1); prepare preserves the stored memfds and they
	// come back as LISTEN_FDS / LISTEN_FDNAMES, as systemd passes them.
	HandoffFDStore HandoffMode = "fdstore"
	// HandoffNone: no handoff socket, no wait, no session of luoinit's; the
	// workload owns whatever it keeps (its own LUO sessions, say).
	HandoffNone HandoffMode = "none"
)

// handoffModes lists the valid handoff modes, for messages and docs.
var handoffModes = []HandoffMode{HandoffSocket, HandoffPidfd, HandoffFDStore, HandoffNone}

// StopMode is how prepare quiesces a workload before the kexec.
type StopMode string

// The stop modes.
const (
	StopTerm    StopMode = "term"    // SIGTERM, SIGKILL after the stop timeout (default)
	StopSigstop StopMode = "sigstop" // SIGSTOP: frozen, not ended, when the old kernel goes
)

// RestartPolicy is what PID 1 does when a workload exits.
type RestartPolicy string

// The restart policies.
const (
	RestartNever     RestartPolicy = "never"      // default
	RestartOnFailure RestartPolicy = "on-failure" // start again after a non-zero exit, with backoff
)

// ReadyMode is the moment a restored workload counts as back in service.
type ReadyMode string

// The readiness modes.
const (
	// ReadyHandoff: when it acknowledged its handoff (socket, pidfd), or
	// when it was started (fdstore, none). The default.
	ReadyHandoff ReadyMode = "handoff"
	// ReadyNotify: when it sends READY=1 on $NOTIFY_SOCKET.
	ReadyNotify ReadyMode = "notify"
)

// SessionsMode is what PID 1 does after the kexec with the LUO sessions a
// workload created and owns itself.
type SessionsMode string

// The session ownership modes.
const (
	// SessionsLeave: PID 1 does not touch them and closes /dev/liveupdate
	// before the workload starts; the workload retrieves them itself.
	SessionsLeave SessionsMode = "leave"
	// SessionsRetrieve: PID 1 retrieves them and hands the session fds to
	// the workload, which retrieves its fds and FINISHes them itself.
	SessionsRetrieve SessionsMode = "retrieve"
)

// Defaults applied by the methods of Workload.
const (
	// DefaultStopTimeout is how long prepare waits after SIGTERM before
	// SIGKILL when a workload sets no stop_timeout.
	DefaultStopTimeout = 5 * time.Second
	// DefaultFDStoreMax is the fd store limit of a workload with handoff
	// "fdstore" that sets no fdstore_max.
	DefaultFDStoreMax = 64
	// FDStoreMaxLimit is the largest fdstore_max accepted.
	FDStoreMaxLimit = 4096
)

// StopOrDefault returns the workload's stop mode, default StopTerm.
func (w *Workload) StopOrDefault() StopMode {
	if w.Stop == "" {
		return StopTerm
	}
	return w.Stop
}

// StopTimeoutOrDefault returns the workload's stop timeout, default DefaultStopTimeout.
func (w *Workload) StopTimeoutOrDefault() time.Duration {
	if w.StopTimeout.Duration <= 0 {
		return DefaultStopTimeout
	}
	return w.StopTimeout.Duration
}

// RestartOrDefault returns the workload's restart policy, default RestartNever.
func (w *Workload) RestartOrDefault() RestartPolicy {
	if w.Restart == "" {
		return RestartNever
	}
	return w.Restart
}

// ReadyOrDefault returns the workload's readiness mode, default ReadyHandoff.
func (w *Workload) ReadyOrDefault() ReadyMode {
	if w.Ready == "" {
		return ReadyHandoff
	}
	return w.Ready
}

// SessionsOrDefault returns what PID 1 does with the workload's own LUO
// sessions after the kexec, default SessionsLeave.
func (w *Workload) SessionsOrDefault() SessionsMode {
	if w.Sessions == "" {
		return SessionsLeave
	}
	return w.Sessions
}

// FDStoreMaxOrDefault returns how many fds PID 1 keeps in the workload's fd
// store: fdstore_max if set, DefaultFDStoreMax for handoff "fdstore",
// else 0 (FDSTORE=1 is refused, as systemd does with
// FileDescriptorStoreMax=0).
func (w *Workload) FDStoreMaxOrDefault() int {
	switch {
	case w.FDStoreMax > 0:
		return w.FDStoreMax
	case w.Handoff == HandoffFDStore:
		return DefaultFDStoreMax
	}
	return 0
}

// UsesHandoffSocket reports whether PID 1 gives the workload a handoff
// socket (LUOINIT_HANDOFF_FD) and waits for its HELLO and ACK.
func (w *Workload) UsesHandoffSocket() bool {
	return w.Handoff == HandoffSocket || w.Handoff == HandoffPidfd
}

// SessionName is the LUO session that holds the fds of a workload.
func SessionName(workload string) string { return wellknown.SessionPrefix + workload }

// Config is the file that declares the workloads.
type Config struct {
	Version   int        `toml:"version"`
	Workloads []Workload `toml:"workload"`
	Network   Network    `toml:"network,omitempty"`
}

// Manifest is what prepare hands to the next kernel: the config's
// workloads with their sessions and tokens, and when things happened.
type Manifest struct {
	Version       int        `toml:"version"`
	Generation    uint64     `toml:"generation"`        // live updates this system has been through with luoinit (1 for the first)
	Written       time.Time  `toml:"written,omitempty"` // UTC, when written
	KernelRelease string     `toml:"kernel_release"`    // uname -r of the outgoing kernel
	NextKernel    NextKernel `toml:"next_kernel,omitempty"`
	Timing        Timing     `toml:"timing,omitempty"`  // when prepare did what, in the old kernel
	Workloads     []Workload `toml:"workload"`          // as configured, plus sessions and tokens
	Network       Network    `toml:"network,omitempty"` // what restore puts back before the workloads start
}

// NextKernel is the kernel prepare loaded, as its preflight read the image:
// the release it will report and the compatible strings of the live
// update state it reads (include/linux/kho/abi/*.h), e.g. "luo-v5". The
// next prepare, running on that kernel, compares the kernel after it with
// these.
type NextKernel struct {
	Release    string   `toml:"release,omitempty"`
	Compatible []string `toml:"compatible,omitempty"`
}

// Timing holds CLOCK_MONOTONIC in the old kernel (ns) plus CLOCK_REALTIME
// for the record. Realtime does not survive a kexec precisely (the RTC has
// 1 s resolution); durations use monotonic.
type Timing struct {
	PrepareStart Stamp `toml:"prepare_start,omitempty"`
	Preserved    Stamp `toml:"preserved,omitempty"`     // all fds preserved
	FirstStopped Stamp `toml:"first_stopped,omitempty"` // first workload stopped
	Reboot       Stamp `toml:"reboot,omitempty"`        // just before reboot(LINUX_REBOOT_CMD_KEXEC)
}

// Stamp is one moment on both clocks. A zero MonotonicNS means unset.
type Stamp struct {
	MonotonicNS int64     `toml:"monotonic_ns"`
	Realtime    time.Time `toml:"realtime,omitempty"`
}

// Now reads both clocks.
func Now() Stamp {
	var ts unix.Timespec
	var mono int64
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) == nil {
		mono = ts.Nano()
	}
	return Stamp{MonotonicNS: mono, Realtime: time.Now().UTC().Round(0)}
}

// Blackout is the time the workloads were out of service in the old
// kernel: from the first workload stopped to the reboot into the new one
// (monotonic). It is 0 if either stamp is unset.
func (t Timing) Blackout() time.Duration {
	if t.FirstStopped.MonotonicNS == 0 || t.Reboot.MonotonicNS == 0 {
		return 0
	}
	return time.Duration(t.Reboot.MonotonicNS - t.FirstStopped.MonotonicNS)
}

// Workload is a program whose fds survive the live update.
type Workload struct {
	Name        string        `toml:"name"`
	Argv        []string      `toml:"argv"`
	Env         []string      `toml:"env,omitempty"` // "KEY=value"
	Dir         string        `toml:"dir,omitempty"` // absolute; "" means /
	UID         uint32        `toml:"uid"`
	GID         uint32        `toml:"gid"`
	Handoff     HandoffMode   `toml:"handoff"`                        // see HandoffMode
	PID         int           `toml:"pid,omitempty,omitzero"`         // pidfd mode: the process (or PIDFile)
	PIDFile     string        `toml:"pidfile,omitempty"`              // absolute
	Stop        StopMode      `toml:"stop,omitempty"`                 // how prepare quiesces it; StopOrDefault() applies the default
	StopTimeout Duration      `toml:"stop_timeout,omitempty"`         // default 5s
	StopCommand []string      `toml:"stop_command,omitempty"`         // run before the stop (a program saving its state); failing cancels the update
	Restart     RestartPolicy `toml:"restart,omitempty"`              // RestartOrDefault() applies the default
	Ready       ReadyMode     `toml:"ready,omitempty"`                // ReadyOrDefault() applies the default
	Sessions    SessionsMode  `toml:"sessions,omitempty"`             // its own LUO sessions after the kexec; SessionsOrDefault() applies the default
	FDStoreMax  int           `toml:"fdstore_max,omitempty,omitzero"` // fd store limit; FDStoreMaxOrDefault() applies the default
	FDSession   string        `toml:"session,omitempty"`              // manifest only: the LUO session holding its fds
	FDs         []FD          `toml:"fd"`
	// OwnedSessions are the LUO sessions the workload created itself and
	// prepare kept open across the kexec (manifest only).
	OwnedSessions []OwnedSession `toml:"owned_session,omitempty"`
}

// OwnedSession is a LUO session a workload created and owns (manifest
// only): prepare found it and held it open until the reboot.
type OwnedSession struct {
	Name string     `toml:"name"` // the session's name (GET_NAME, or from /proc)
	Via  SessionVia `toml:"via"`  // how prepare got it
}

// SessionVia is how prepare found a workload-owned session.
type SessionVia string

// The ways prepare finds a workload's own sessions.
const (
	ViaPush    SessionVia = "push"    // pushed over the handoff socket (fd kind "session")
	ViaFDStore SessionVia = "fdstore" // in the workload's fd store in PID 1
	ViaProc    SessionVia = "proc"    // held by the workload or a descendant, taken with pidfd_getfd
)

// sessionVias lists the valid SessionVia values, for messages.
var sessionVias = []SessionVia{ViaPush, ViaFDStore, ViaProc}

// reservedSessionName reports whether name is in luoinit's own session
// namespace ("luoinit", "luoinit.*"): no workload may own such a session.
func reservedSessionName(name string) bool {
	return name == carry.Session || strings.HasPrefix(name, wellknown.SessionPrefix)
}

// CheckOwnedSession says what is wrong with workload w owning a session
// named name, or returns nil: a LUO session name (1 to 63 bytes, no NUL,
// valid UTF-8 so that the manifest can hold it), outside luoinit's
// namespace, and, when PID 1 hands it over (sessions = "retrieve"), usable
// as a handoff fd name (no '/', not "." or "..") that none of w's fds has.
func CheckOwnedSession(w *Workload, name string) error {
	switch {
	case name == "":
		return errors.New("session name is empty")
	case len(name) > sessionNameMax:
		return fmt.Errorf("session name %q is %d bytes, at most %d are allowed", name, len(name), sessionNameMax)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("session name %q contains a NUL byte", name)
	case !utf8.ValidString(name):
		return fmt.Errorf("session name %q is not valid UTF-8", name)
	case reservedSessionName(name):
		return fmt.Errorf("session %q is in luoinit's own namespace (%s and %s*): a workload cannot own it", name, carry.Session, wellknown.SessionPrefix)
	}
	if w.SessionsOrDefault() != SessionsRetrieve {
		return nil
	}
	if name == "." || name == ".." || strings.IndexByte(name, '/') >= 0 {
		return fmt.Errorf("session %q cannot be handed over by name (sessions = %q): a handoff fd name has no '/' and is not \".\" or \"..\"", name, SessionsRetrieve)
	}
	for _, fd := range w.FDs {
		if fd.Name == name {
			return fmt.Errorf("session %q has the name of the workload's fd %q: with sessions = %q both are handed over by name", name, fd.Name, SessionsRetrieve)
		}
	}
	return nil
}

// FD is one fd of a workload, preserved under a token of its session.
type FD struct {
	Name     string `toml:"name"`
	Optional bool   `toml:"optional,omitempty"` // if LUO refuses it, drop it (recorded) instead of failing prepare
	Number   *int   `toml:"number,omitempty"`   // pidfd mode: the fd number in the workload
	// Size makes the fd a memfd that PID 1 creates for the workload, of
	// this size, before its first start (handoff "fdstore" only): a
	// program that maps its memory from a path such as
	// /proc/self/fd/N gets memory that survives the update.
	Size       ByteSize `toml:"size,omitempty,omitzero"`
	Token      uint64   `toml:"token,omitempty,omitzero"` // manifest only: LUO token (prepare assigns from 1 up; 0 means none)
	Kind       string   `toml:"kind,omitempty"`           // manifest only: "memfd", ...
	Dropped    bool     `toml:"dropped,omitempty"`        // manifest only: optional fd left out
	DropReason string   `toml:"drop_reason,omitempty"`    // manifest only: why (e.g. the errno)
}

// The kinds of fd a manifest records (FD.Kind), as prepare finds them in
// /proc/self/fd: KindAnon is followed by the anon inode's name
// ("anon:eventfd"); AnonKind makes one.
const (
	KindMemfd   = "memfd"
	KindPipe    = "pipe"
	KindSocket  = "socket"
	KindFile    = "file"
	KindUnknown = "unknown"
	KindAnon    = "anon:"
)

// Kinds lists the fixed fd kinds, for messages and docs.
var Kinds = []string{KindMemfd, KindPipe, KindSocket, KindFile, KindUnknown}

// anonNameMax bounds the name after KindAnon.
const anonNameMax = 64

// AnonKind is the kind of an anon inode fd named name ("eventfd",
// "[io_uring]" without its brackets), or KindUnknown if the name does not
// fit the rule ValidKind checks.
func AnonKind(name string) string {
	if k := KindAnon + name; ValidKind(k) {
		return k
	}
	return KindUnknown
}

// ValidKind reports whether kind is one a manifest may hold: one of Kinds,
// or KindAnon and 1 to 64 bytes of ASCII letters, digits, '_', '-', '.'.
func ValidKind(kind string) bool {
	if name, ok := strings.CutPrefix(kind, KindAnon); ok {
		if len(name) == 0 || len(name) > anonNameMax {
			return false
		}
		for i := 0; i < len(name); i++ {
			if c := name[i]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
				return false
			}
		}
		return true
	}
	for _, k := range Kinds {
		if kind == k {
			return true
		}
	}
	return false
}

func kindList() string { return wordList(append(slices.Clone(Kinds), KindAnon+"<name>")) }

// Duration is a time.Duration written as a TOML string like "5s".
type Duration struct{ time.Duration }

// MarshalText writes the duration as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// UnmarshalText reads a duration as time.ParseDuration does.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// ByteSize is a size in bytes written as a TOML string: a number with an
// optional binary unit, "4096", "512K", "64M", "2G", "1T" ("KiB", "MiB",
// "GiB", "TiB" too). Every unit is a power of 1024.
type ByteSize int64

// byteUnits are the units ByteSize reads, largest first.
var byteUnits = []struct {
	suffix string
	shift  uint
}{{"T", 40}, {"G", 30}, {"M", 20}, {"K", 10}}

// MarshalText writes the size in the largest unit that divides it.
func (b ByteSize) MarshalText() ([]byte, error) {
	for _, u := range byteUnits {
		if b > 0 && b%(1<<u.shift) == 0 {
			return []byte(strconv.FormatInt(int64(b>>u.shift), 10) + u.suffix + "iB"), nil
		}
	}
	return []byte(strconv.FormatInt(int64(b), 10)), nil
}

// UnmarshalText reads a size as ByteSize describes it.
func (b *ByteSize) UnmarshalText(text []byte) error {
	s := string(text)
	num, shift := s, uint(0)
	for _, u := range byteUnits {
		if n, ok := strings.CutSuffix(s, u.suffix+"iB"); ok {
			num, shift = n, u.shift
			break
		}
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, shift = n, u.shift
			break
		}
	}
	v, err := strconv.ParseUint(num, 10, 63)
	if err != nil || num == "" || num[0] == '+' {
		return fmt.Errorf("size %q: want a whole number of bytes with an optional unit K, M, G or T (KiB, MiB, GiB, TiB), e.g. \"64M\"", s)
	}
	if v > math.MaxInt64>>shift {
		return fmt.Errorf("size %q is too large", s)
	}
	*b = ByteSize(v << shift)
	return nil
}

// MaxMemfdSize is the largest size of a memfd PID 1 creates (FD.Size).
const MaxMemfdSize ByteSize = 1 << 40

// ParseConfig reads and validates a config; data over MaxFileSize is
// refused.
func ParseConfig(data []byte) (*Config, error) { return parseConfig("config.toml", data) }

// LoadConfig reads and validates the config file at path. It reads at most
// MaxFileSize bytes and one more: a larger file, or an endless one such as
// /dev/zero, is refused at once.
func LoadConfig(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parseConfig(path, data)
}

// Parse reads and validates a manifest; data over MaxFileSize is refused.
func Parse(data []byte) (*Manifest, error) { return parseManifest("manifest.toml", data) }

// Load reads and validates the manifest file at path, reading at most
// MaxFileSize bytes and one more, as LoadConfig does.
func Load(path string) (*Manifest, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return parseManifest(path, data)
}

// readFile reads a config or manifest through a reader capped one byte
// past MaxFileSize, so that its memory is bounded whatever path names.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, tooLarge(path)
	}
	return data, nil
}

func parseConfig(name string, data []byte) (*Config, error) {
	c := new(Config)
	if err := parse(name, data, c, false); err != nil {
		return nil, err
	}
	return c, nil
}

func parseManifest(name string, data []byte) (*Manifest, error) {
	m := new(Manifest)
	if err := parse(name, data, m, true); err != nil {
		return nil, err
	}
	return m, nil
}

// NewManifest starts the manifest of this config: a deep copy of the
// workloads, each with its session named, generation 1; tokens, timing and
// a later generation are prepare's.
func (c *Config) NewManifest() *Manifest {
	m := &Manifest{Version: Version, Generation: 1}
	if len(c.Workloads) > 0 {
		m.Workloads = make([]Workload, len(c.Workloads))
	}
	for i, w := range c.Workloads {
		w.Argv = cloneStrings(w.Argv)
		w.Env = cloneStrings(w.Env)
		if w.Handoff != HandoffNone {
			// handoff "none": luoinit keeps nothing, so no session of its.
			w.FDSession = SessionName(w.Name)
		}
		if len(w.FDs) > 0 {
			fds := make([]FD, len(w.FDs))
			for j, fd := range w.FDs {
				if fd.Number != nil {
					n := *fd.Number
					fd.Number = &n
				}
				fds[j] = fd
			}
			w.FDs = fds
		}
		m.Workloads[i] = w
	}
	return m
}

func cloneStrings(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return append([]string(nil), s...)
}

const header = "# luoinit manifest: written by luoinit prepare, read by luoinit (PID 1)\n# after the kexec. See docs/manifest.md.\n\n"

// Marshal encodes the manifest, after validating it: whatever Marshal
// returns, Parse accepts. The same content always gives the same bytes.
func (m *Manifest) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := toml.NewEncoder(&b)
	enc.Indent = ""
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("manifest: encode: %w", err)
	}
	// The encoder writes strings and arrays on one line each, so every
	// line that starts with '[' is a table header: set each apart.
	out := []byte(header)
	prev := ""
	for _, line := range strings.SplitAfter(b.String(), "\n") {
		if strings.HasPrefix(line, "[") && prev != "\n" && prev != "" {
			out = append(out, '\n')
		}
		out = append(out, line...)
		prev = line
	}
	return out, nil
}

// WriteFile writes the manifest to path atomically (package atomicfile).
func (m *Manifest) WriteFile(path string) error {
	data, err := m.Marshal()
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(path, 0o644, data); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	return nil
}

// Summary describes the manifest for a person, on several lines.
func (m *Manifest) Summary() string {
	var b strings.Builder
	m.summaryHead(&b)
	m.Timing.summary(&b)
	m.summaryCounts(&b)
	for i := range m.Workloads {
		m.Workloads[i].summary(&b)
	}
	return b.String()
}

// summaryHead writes the version and generation, and when and by which
// kernel the manifest was written, if it says.
func (m *Manifest) summaryHead(b *strings.Builder) {
	fmt.Fprintf(b, "manifest version %d, generation %d\n", m.Version, m.Generation)
	if m.Written.IsZero() && m.KernelRelease == "" {
		return
	}
	written := "(unknown time)"
	if !m.Written.IsZero() {
		written = m.Written.UTC().Format(time.RFC3339)
	}
	release := m.KernelRelease
	if release == "" {
		release = "(unknown)"
	}
	fmt.Fprintf(b, "written %s by kernel %s\n", written, release)
}

// summary writes the blackout and how long prepare took, where the
// stamps are there to say.
func (t Timing) summary(b *strings.Builder) {
	if d := t.Blackout(); d != 0 {
		fmt.Fprintf(b, "blackout %v (first workload stopped to kexec)\n", d)
	}
	if t.PrepareStart.MonotonicNS == 0 {
		return
	}
	if t.Preserved.MonotonicNS != 0 {
		fmt.Fprintf(b, "preserving took %v\n", time.Duration(t.Preserved.MonotonicNS-t.PrepareStart.MonotonicNS))
	}
	if t.Reboot.MonotonicNS != 0 {
		fmt.Fprintf(b, "prepare took %v up to the kexec\n", time.Duration(t.Reboot.MonotonicNS-t.PrepareStart.MonotonicNS))
	}
}

// summaryCounts writes how many workloads and fds, preserved and dropped.
func (m *Manifest) summaryCounts(b *strings.Builder) {
	var kept, dropped int
	for _, w := range m.Workloads {
		for _, fd := range w.FDs {
			if fd.Dropped {
				dropped++
			} else {
				kept++
			}
		}
	}
	fmt.Fprintf(b, "%d workloads, %d fds preserved, %d dropped\n", len(m.Workloads), kept, dropped)
}

// summary writes the workload: how it is found, run and stopped, then its
// fds.
func (w *Workload) summary(b *strings.Builder) {
	if w.FDSession != "" {
		fmt.Fprintf(b, "\nworkload %s: session %q, handoff %s", w.Name, w.FDSession, w.Handoff)
	} else {
		fmt.Fprintf(b, "\nworkload %s: handoff %s, no session of luoinit's", w.Name, w.Handoff)
	}
	if w.PID != 0 {
		fmt.Fprintf(b, ", pid %d", w.PID)
	}
	if w.PIDFile != "" {
		fmt.Fprintf(b, ", pidfile %s", w.PIDFile)
	}
	b.WriteString("\n")
	for _, o := range w.OwnedSessions {
		fmt.Fprintf(b, "  owns session %q (found via %s; after the kexec: %s)\n", o.Name, o.Via, w.SessionsOrDefault())
	}
	fmt.Fprintf(b, "  run   %s\n", quoteArgv(w.Argv))
	dir := w.Dir
	if dir == "" {
		dir = "/"
	}
	fmt.Fprintf(b, "  as    uid %d gid %d in %s\n", w.UID, w.GID, dir)
	for _, e := range w.Env {
		fmt.Fprintf(b, "  env   %s\n", e)
	}
	stop := string(w.StopOrDefault())
	if w.StopOrDefault() == StopTerm {
		stop = fmt.Sprintf("%s (SIGKILL after %v)", stop, w.StopTimeoutOrDefault())
	}
	fmt.Fprintf(b, "  stop  %s, restart %s\n", stop, w.RestartOrDefault())
	summaryFDs(b, w.FDs)
}

// summaryFDs writes one line per fd, in columns: its token and kind, or
// why it was dropped; its number in the workload; whether it is optional.
func summaryFDs(b *strings.Builder, fds []FD) {
	if len(fds) == 0 {
		return
	}
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	for _, fd := range fds {
		fmt.Fprintf(tw, "  fd %s\t", fd.Name)
		switch {
		case fd.Dropped:
			reason := fd.DropReason
			if reason == "" {
				reason = "no reason recorded"
			}
			fmt.Fprintf(tw, "dropped\t%s", reason)
		default:
			fmt.Fprintf(tw, "token %d\t%s", fd.Token, fd.Kind)
		}
		if fd.Number != nil {
			fmt.Fprintf(tw, "\tfrom fd %d", *fd.Number)
		}
		if fd.Optional {
			fmt.Fprint(tw, "\toptional")
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// quoteArgv shows an argv as a shell would need it typed.
func quoteArgv(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r == '/' || r == '.' || r == '-' || r == '_' || r == '=' || r == ':' || r == ',' ||
				r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		}) < 0 {
			q[i] = a
		} else {
			q[i] = fmt.Sprintf("%q", a)
		}
	}
	return strings.Join(q, " ")
}
