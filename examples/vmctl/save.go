package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

type saveConfig struct {
	qmp     string
	state   string
	timeout time.Duration
	poll    time.Duration // between two query-migrate
}

// recoverTimeout bounds the work of putting a VM back after a failed save,
// on top of --timeout.
const recoverTimeout = 10 * time.Second

// save writes the VM's cpr-reboot state to cfg.state and makes QEMU quit.
// RAM that is shared (a memory-backend-file with share=on) stays out of the
// state (x-ignore-shared): it is where the next QEMU finds it. On any
// failure the VM runs again if it ran before and no state file is left:
// a state next to RAM that moved on would restore a guest into the wrong
// memory.
func save(ctx context.Context, cfg saveConfig, stdout, stderr io.Writer) error {
	state, err := filepath.Abs(cfg.state)
	if err != nil {
		return err
	}
	tmp := state + ".tmp"
	uri, err := fileURI(tmp)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, cfg.timeout, fmt.Errorf("--timeout %v passed", cfg.timeout))
	defer cancel()

	c, err := dialQMP(ctx, cfg.qmp)
	if err != nil {
		return err
	}
	wasRunning, err := c.running(ctx)
	if err != nil {
		c.Close()
		return err
	}
	step, err := migrate(ctx, c, uri, cfg.poll)
	complete := false
	if err == nil {
		step, err = "publishing the state", publish(tmp, state)
		complete = err == nil
	}
	if err == nil {
		// Once QEMU took the quit, it exits: the state is the VM now.
		step, err = "quit", c.execute(ctx, "quit", nil, nil)
	}
	if err != nil {
		c.Close()
		return undo(cfg.qmp, wasRunning, step, err, tmp, state, complete)
	}
	if err := c.waitClosed(ctx); err != nil {
		fmt.Fprintf(stderr, "vmctl: %v\n", err)
	}
	c.Close()
	st, err := os.Stat(state)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "vmctl: saved state: %d bytes in %s from the VM of %s; QEMU quit\n", st.Size(), state, cfg.qmp)
	return nil
}

// migrate runs a cpr-reboot migration to uri and waits for its end; it
// returns the step that failed, if one did. QEMU stops the VM for the
// migration (and starts it again after most failures).
func migrate(ctx context.Context, c *qmp, uri string, poll time.Duration) (string, error) {
	type capability struct {
		Capability string `json:"capability"`
		State      bool   `json:"state"`
	}
	steps := []struct {
		command string
		args    any
	}{
		{"migrate-set-capabilities", map[string]any{"capabilities": []capability{{"x-ignore-shared", true}}}},
		{"migrate-set-parameters", map[string]any{"mode": "cpr-reboot"}},
		{"migrate", map[string]any{"uri": uri}},
	}
	for _, s := range steps {
		if err := c.execute(ctx, s.command, s.args, nil); err != nil {
			return s.command, err
		}
	}
	m, err := c.waitMigration(ctx, poll)
	if err != nil {
		// Whatever part of it ran, cancel it before the VM is resumed, on
		// a new connection: QEMU serves one client at a time, and this one
		// may be cut off mid-answer by its deadline.
		c.Close()
		cctx, cancel := context.WithTimeout(context.Background(), recoverTimeout)
		defer cancel()
		if cerr := cancelMigration(cctx, c.socket); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return "query-migrate", err
	}
	if m.Status != "completed" {
		return "query-migrate", fmt.Errorf("qmp %s: migration to %s %s: %s", c.socket, uri, m.Status, m.ErrorDesc)
	}
	return "", nil
}

// cancelMigration cancels the migration on a new connection and waits for
// its end.
func cancelMigration(ctx context.Context, socket string) error {
	c, err := dialQMP(ctx, socket)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.execute(ctx, "migrate_cancel", nil, nil); err != nil {
		return err
	}
	_, err = c.waitMigration(ctx, 20*time.Millisecond)
	return err
}

// publish makes the finished state durable under its name: the file's data,
// then the rename, then the directory entry. The state must survive the
// reboot that follows, page cache or not.
func publish(tmp, state string) error {
	f, err := os.Open(tmp)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, state); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(state))
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := dir.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir.Name(), err)
	}
	return nil
}

// undo puts the VM back after a failed save. It removes the partial
// state, and on a new connection it removes a complete one too and then
// resumes the VM (cont) if it ran before and is stopped now: a VM must
// never run next to a state file. A QEMU out of reach keeps a complete
// state: the VM cannot run again then, and the state is all that is left
// of it. The error says what failed and what undo did about it.
func undo(socket string, wasRunning bool, step string, cause error, tmp, state string, complete bool) error {
	failed := fmt.Errorf("save failed at %s: %w", step, cause)
	if err := removeIfThere(tmp); err != nil {
		failed = errors.Join(failed, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), recoverTimeout)
	defer cancel()
	c, err := dialQMP(ctx, socket)
	if err != nil {
		if complete {
			return fmt.Errorf("%w; QEMU is out of reach (%w); the complete state stays at %s", failed, err, state)
		}
		return fmt.Errorf("%w; QEMU is out of reach: %w", failed, err)
	}
	defer c.Close()
	if err := removeIfThere(state); err != nil {
		return fmt.Errorf("%w; the VM is left stopped: %w", failed, err)
	}
	if !wasRunning {
		return fmt.Errorf("%w; no state file left; the VM did not run before and is left as it is", failed)
	}
	running, err := c.running(ctx)
	if err != nil {
		return fmt.Errorf("%w; no state file left; the VM may be stopped: %w", failed, err)
	}
	if running {
		return fmt.Errorf("%w; no state file left; the VM runs again (QEMU resumed it)", failed)
	}
	if err := c.execute(ctx, "cont", nil, nil); err != nil {
		return fmt.Errorf("%w; no state file left; the VM is stopped: %w", failed, err)
	}
	return fmt.Errorf("%w; no state file left; the VM runs again (cont)", failed)
}

func removeIfThere(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
