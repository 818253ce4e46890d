package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// qmp is a connection to QEMU's QMP socket, past the capabilities
// negotiation. One command at a time; events are read and dropped.
type qmp struct {
	socket string
	conn   net.Conn
	dec    *json.Decoder
	enc    *json.Encoder
	id     int
}

// CommandError is QEMU's error answer to a command.
type CommandError struct {
	Socket, Command string
	Class, Desc     string // QEMU's error class and text
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("qmp %s: %s: %s (%s)", e.Socket, e.Command, e.Desc, e.Class)
}

// dialQMP connects to the QMP socket and enters command mode
// (qmp_capabilities).
func dialQMP(ctx context.Context, socket string) (*qmp, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("qmp %s: %w", socket, err)
	}
	c := &qmp{socket: socket, conn: conn, dec: json.NewDecoder(conn), enc: json.NewEncoder(conn)}
	var greeting struct {
		QMP *json.RawMessage `json:"QMP"`
	}
	c.deadline(ctx)
	if err := c.dec.Decode(&greeting); err != nil || greeting.QMP == nil {
		conn.Close()
		if err == nil {
			err = errors.New("no QMP greeting")
		}
		return nil, fmt.Errorf("qmp %s: reading the greeting: %w", socket, err)
	}
	if err := c.execute(ctx, "qmp_capabilities", nil, nil); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func (c *qmp) Close() error { return c.conn.Close() }

// deadline bounds the next read and write by ctx's deadline, if it has one.
func (c *qmp) deadline(ctx context.Context) {
	d, _ := ctx.Deadline() // the zero time: no deadline
	c.conn.SetDeadline(d)
}

// execute runs command with args (nil for none) and decodes its return
// value into result (nil to drop it). QEMU's error answer comes back as a
// *CommandError; any other error names the socket and the command too.
func (c *qmp) execute(ctx context.Context, command string, args, result any) error {
	c.id++
	req := struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
		ID        int    `json:"id"`
	}{command, args, c.id}
	c.deadline(ctx)
	if err := c.enc.Encode(req); err != nil {
		return c.fail(ctx, command, err)
	}
	for {
		var resp struct {
			Event  string          `json:"event"`
			ID     *int            `json:"id"`
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Class string `json:"class"`
				Desc  string `json:"desc"`
			} `json:"error"`
		}
		if err := c.dec.Decode(&resp); err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("QEMU closed the connection: %w", err)
			}
			return c.fail(ctx, command, err)
		}
		if resp.Event != "" || resp.ID == nil || *resp.ID != c.id {
			continue
		}
		if resp.Error != nil {
			return &CommandError{Socket: c.socket, Command: command, Class: resp.Error.Class, Desc: resp.Error.Desc}
		}
		if result == nil || resp.Return == nil {
			return nil
		}
		if err := json.Unmarshal(resp.Return, result); err != nil {
			return fmt.Errorf("qmp %s: %s: its answer %s: %w", c.socket, command, resp.Return, err)
		}
		return nil
	}
}

// fail is the error of command on the connection; the connection's
// deadline is ctx's, so a timeout says why ctx ended.
func (c *qmp) fail(ctx context.Context, command string, err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		<-ctx.Done() // it is, or is about to be
		err = fmt.Errorf("%w: %w", context.Cause(ctx), err)
	}
	return fmt.Errorf("qmp %s: %s: %w", c.socket, command, err)
}

// running asks whether the guest's CPUs run (query-status).
func (c *qmp) running(ctx context.Context) (bool, error) {
	var st struct {
		Running bool `json:"running"`
	}
	err := c.execute(ctx, "query-status", nil, &st)
	return st.Running, err
}

// migration is what query-migrate says of the last migration.
type migration struct {
	Status    string `json:"status"`
	ErrorDesc string `json:"error-desc"`
}

// active reports whether the migration has yet to end.
func (m migration) active() bool {
	switch m.Status {
	case "completed", "failed", "cancelled", "none":
		return false
	}
	return true
}

// waitMigration polls query-migrate every poll until the migration ends or
// ctx is done.
func (c *qmp) waitMigration(ctx context.Context, poll time.Duration) (migration, error) {
	for {
		var m migration
		if err := c.execute(ctx, "query-migrate", nil, &m); err != nil {
			return m, err
		}
		if !m.active() {
			return m, nil
		}
		select {
		case <-ctx.Done():
			return m, fmt.Errorf("qmp %s: migration still %q: %w", c.socket, m.Status, context.Cause(ctx))
		case <-time.After(poll):
		}
	}
}

// waitClosed waits until QEMU closes the connection (after quit).
func (c *qmp) waitClosed(ctx context.Context) error {
	c.deadline(ctx)
	for {
		var msg json.RawMessage
		if err := c.dec.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("qmp %s: QEMU took the quit but did not close the connection: %w", c.socket, err)
		}
	}
}
