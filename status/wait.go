package status

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// ErrOtherEnd is wrapped by Wait when the restore ended in the other
// terminal state: waiting for finished when it ended degraded (or the
// reverse) would never return.
var ErrOtherEnd = errors.New("the restore ended in the other final state")

// PollInterval is how often Wait reads the state file on a kernel built
// without inotify (CONFIG_INOTIFY_USER off: inotify_init1 gives ENOSYS).
const PollInterval = 50 * time.Millisecond

// Wait blocks until dir's state file says want, ctx ends, or the restore
// ends in the other terminal state. It is woken by inotify on dir (the
// file is replaced by rename, which a watch on the file itself would
// miss), not by polling; only a kernel without inotify makes it read the
// file every PollInterval instead. It returns the status that satisfied
// it. A missing dir gives an error wrapping os.ErrNotExist at once; a
// missing file is waited for.
func Wait(ctx context.Context, dir string, want State) (*Status, error) {
	if !Valid(want) {
		return nil, fmt.Errorf("%q is not a state (%v)", want, States)
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if errors.Is(err, unix.ENOSYS) {
		return poll(ctx, dir, want)
	}
	if err != nil {
		return nil, fmt.Errorf("inotify_init1(IN_CLOEXEC|IN_NONBLOCK): %w", err)
	}
	defer unix.Close(fd)
	// Watch before the first read: a write between the read and the
	// watch would otherwise be missed.
	const mask = unix.IN_MOVED_TO | unix.IN_CLOSE_WRITE | unix.IN_CREATE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("%s: %w", dir, os.ErrNotExist)
		}
		return nil, fmt.Errorf("inotify_add_watch(%q, IN_MOVED_TO|IN_CLOSE_WRITE|IN_CREATE|IN_DELETE_SELF|IN_MOVE_SELF): %w", dir, err)
	}
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		st, done, err := check(dir, want)
		if done {
			return st, err
		}
		if err := waitEvent(ctx, fd); err != nil {
			return st, err
		}
		// Drain: one read per wakeup is enough, the file is read again.
		for {
			n, err := unix.Read(fd, buf)
			if n <= 0 || err != nil {
				break
			}
			if dirGone(buf[:n]) {
				return st, fmt.Errorf("%s was removed or moved while waiting", dir)
			}
		}
	}
}

// dirGone reports whether the inotify events in b say the watched
// directory itself went away.
func dirGone(b []byte) bool {
	for len(b) >= unix.SizeofInotifyEvent {
		mask := binary.NativeEndian.Uint32(b[4:8])
		nameLen := int(binary.NativeEndian.Uint32(b[12:16]))
		if mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_IGNORED) != 0 {
			return true
		}
		if unix.SizeofInotifyEvent+nameLen > len(b) {
			return false
		}
		b = b[unix.SizeofInotifyEvent+nameLen:]
	}
	return false
}

// waitEvent polls the inotify fd until it is readable or ctx ends.
func waitEvent(ctx context.Context, fd int) error {
	for {
		timeout := -1
		if dl, ok := ctx.Deadline(); ok {
			left := time.Until(dl)
			if left <= 0 {
				return context.DeadlineExceeded
			}
			timeout = int(left/time.Millisecond) + 1
		}
		// Wake at least every second to notice a cancelled ctx.
		if timeout < 0 || timeout > 1000 {
			timeout = 1000
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, timeout)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("poll(inotify fd %d): %w", fd, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
	}
}

// check reads the state file once: done when want is reached (or can no
// longer be) or the file cannot be read.
func check(dir string, want State) (*Status, bool, error) {
	st, err := Read(dir)
	switch {
	case err == nil && st.State == want:
		return st, true, nil
	case err == nil && Terminal(st.State) && Terminal(want):
		return st, true, fmt.Errorf("%w: waiting for %s, the state is %s", ErrOtherEnd, want, st.State)
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return nil, true, err
	}
	return st, false, nil
}

// poll is Wait on a kernel without inotify.
func poll(ctx context.Context, dir string, want State) (*Status, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	for {
		st, done, err := check(dir, want)
		if done {
			return st, err
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-t.C:
		}
	}
}
