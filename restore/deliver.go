package restore

import (
	"errors"
	"fmt"
	"time"

	"github.com/luoinit/luoinit/handoff"
)

// errNotTheWorkload is wrapped when the process speaking on a workload's
// handoff socket is not the one the init started for it.
var errNotTheWorkload = errors.New("handoff from a process other than the workload")

// Deliver hands files to the workload on c: it waits for the workload's
// HELLO (pull, its own name), checks that the sender is pid (SO_PASSCRED
// must be on: see handoff.Conn.PassCred), sends the files and waits for
// the ACK. The files stay open: the caller closes its copies once Deliver
// succeeded, and keeps them for another try if it failed.
func deliver(c *handoff.Conn, name string, pid int, files []handoff.File, timeout time.Duration) error {
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	h, err := c.ReadHello()
	if err != nil {
		return err
	}
	if sender, ok := c.Sender(); !ok || sender.PID != pid {
		c.SendError(fmt.Sprintf("this handoff belongs to workload %q (pid %d)", name, pid))
		return fmt.Errorf("workload %q: HELLO came from pid %d (credentials known: %v), not from pid %d: %w", name, sender.PID, ok, pid, errNotTheWorkload)
	}
	if h.Direction != handoff.DirectionPull || h.Workload != name {
		c.SendError(fmt.Sprintf("this handoff is a pull for workload %q", name))
		return fmt.Errorf("workload %q: HELLO asks to %v for workload %q", name, h.Direction, h.Workload)
	}
	if err := c.SendFiles(files); err != nil {
		return err
	}
	return c.ReadAck()
}
