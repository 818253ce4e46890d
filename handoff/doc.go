// Package handoff moves named open fds between a workload and luoinit over
// a SOCK_SEQPACKET unix socket (SCM_RIGHTS), in both directions: a workload
// pushes its memfds to `luoinit prepare` before a kexec and pulls them back
// from the restore-side init after it:
//
//	files := []handoff.File{{Name: "heap", File: memfd}}
//	err := handoff.Push(socketPath, "kv", files, 5*time.Second) // before
//	files, err = handoff.Receive("kv", 5*time.Second)           // after: LUOINIT_HANDOFF_FD or _SOCKET
//
// The serving side uses Listen and Accept (or Socketpair for a child), then
// Peer, ReadHello, ReceiveFiles or SendFiles, and SendAck or ReadAck. The
// wire protocol, for writing a peer in another language, is
// docs/handoff.md.
package handoff
