package rootfs

import (
	"context"
	"fmt"
	"time"

	"github.com/u-root/uio/ulog"
)

// progressEvery is how often the wait for the root device says what it
// waits for.
const progressEvery = 5 * time.Second

// pollEvery is how often the device is looked for: devtmpfs makes the
// node when the driver registers the disk, with nothing to wait on.
const pollEvery = 50 * time.Millisecond

// NotFoundError is a root device that did not appear within the wait.
type NotFoundError struct {
	Spec    Spec
	Waited  time.Duration
	Devices string // the block devices there were, with their identities
}

func (e *NotFoundError) Error() string {
	how := "without rootwait"
	if e.Spec.Wait != NoWait {
		how = fmt.Sprintf("%s=%d", ParamWait, int(e.Spec.Wait/time.Second))
	}
	return fmt.Sprintf("root device %s=%s did not appear within %v (%s); block devices: %s",
		ParamRoot, e.Spec.Root, e.Waited.Round(time.Millisecond), how, e.Devices)
}

// wait looks for spec's device until it is there or spec.Wait has
// passed, with a progress line every progressEvery.
func (s system) wait(ctx context.Context, spec Spec, log ulog.Logger) (string, error) {
	if spec.Delay > 0 {
		log.Printf("root: %s=%d: waiting %v before looking for %s=%s", ParamDelay, int(spec.Delay/time.Second), spec.Delay, ParamRoot, spec.Root)
		select {
		case <-time.After(spec.Delay):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	start := time.Now()
	deadline := start.Add(spec.Wait)
	nextProgress := start.Add(progressEvery)
	for {
		dev, err := s.find(spec)
		if err != nil || dev != "" {
			return dev, err
		}
		now := time.Now()
		if !now.Before(deadline) {
			return "", &NotFoundError{Spec: spec, Waited: now.Sub(start), Devices: s.describe()}
		}
		if !now.Before(nextProgress) {
			log.Printf("root: waiting for %s=%s: %v of at most %v; block devices: %s",
				ParamRoot, spec.Root, now.Sub(start).Round(time.Second), spec.Wait, s.describe())
			nextProgress = nextProgress.Add(progressEvery)
		}
		select {
		case <-time.After(min(pollEvery, deadline.Sub(now))):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}
