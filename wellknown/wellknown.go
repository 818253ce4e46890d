// Package wellknown holds the names luoinit's parts share with each other and
// with the workloads: its runtime directory and what lives there, the
// config's path, the environment it gives workloads, and the prefix of the
// LUO sessions it makes for them. Every other package uses them from here.
//
//	sock := wellknown.PushSocket                  // where prepare takes the workloads' pushes
//	fd := os.Getenv(wellknown.EnvHandoffFD)       // a workload's handoff socket after a kexec
//	session := wellknown.SessionPrefix + "kvcache" // the LUO session of workload kvcache
package wellknown

// RunDir is luoinit's runtime directory: its sockets, the state file
// (package status) and the copy of the last manifest.
const RunDir = "/run/luoinit"

// What lives in RunDir.
const (
	// PushSocket is where `luoinit prepare` takes the workloads' pushes
	// (docs/handoff.md).
	PushSocket = RunDir + "/prepare.sock"
	// ControlSocket is where PID 1 takes a `luoinit prepare` command.
	ControlSocket = RunDir + "/control.sock"
	// NotifyDir holds PID 1's notification sockets, one per workload
	// (NOTIFY_SOCKET).
	NotifyDir = RunDir + "/notify"
	// ManifestCopy is where PID 1 writes a copy of the manifest it read
	// from luoinit's own LUO session, for `luoinit manifest show` and the
	// next prepare.
	ManifestCopy = RunDir + "/manifest.toml"
)

// Config is where the config sits, in the initramfs or on the root.
const Config = "/etc/luoinit/config.toml"

// The environment PID 1 gives the workloads it starts.
const (
	// EnvWorkload is the workload's name: the name to say in HELLO, both
	// when it pulls after a kexec and when it pushes before the next one.
	// Descendants that keep their environment carry it too, which is how
	// prepare finds a workload's daemon child after its parent exited.
	EnvWorkload = "LUOINIT_WORKLOAD"
	// EnvHandoffFD is the number of an inherited, connected
	// SOCK_SEQPACKET socket to pull the workload's fds from.
	EnvHandoffFD = "LUOINIT_HANDOFF_FD"
	// EnvHandoffSocket is the path of a unix socket to connect to and
	// pull the fds from; EnvHandoffFD wins when both are set.
	EnvHandoffSocket = "LUOINIT_HANDOFF_SOCKET"
)

// SessionPrefix starts the LUO session name of every workload: "luoinit."
// and the workload's name, at most 63 bytes (LUO's limit without the NUL).
const SessionPrefix = "luoinit."
