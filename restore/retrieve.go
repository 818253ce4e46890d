package restore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/luoinit/luoinit/carry"
	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/luo"
	"github.com/luoinit/luoinit/manifest"
	"github.com/u-root/uio/ulog"
)

// Device is what restore needs of /dev/liveupdate; *luo.Device through
// luoDevice, a fake in tests.
type Device interface {
	RetrieveSession(name string) (Session, error)
	Close() error
}

// Session is what restore needs of a retrieved LUO session.
type Session interface {
	Name() string
	RetrieveFD(token uint64) (*os.File, error)
	Finish() error
	Close() error
	// File is the session fd, to hand to a workload that owns the
	// session (sessions = "retrieve").
	File() *os.File
}

// luoDevice adapts *luo.Device to Device.
type luoDevice struct{ *luo.Device }

// RetrieveSession implements Device.
func (d luoDevice) RetrieveSession(name string) (Session, error) {
	s, err := d.Device.RetrieveSession(name)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Lost is a preserved fd that did not come back.
type Lost struct {
	Workload, FD, Session string
	Token                 uint64
	Err                   error
}

func (l Lost) String() string {
	return fmt.Sprintf("workload %q fd %q (session %q token %d) lost: %v", l.Workload, l.FD, l.Session, l.Token, l.Err)
}

// Workload is one workload's restored state.
type Workload struct {
	Spec    manifest.Workload
	Session Session        // nil if the session could not be retrieved or there was none
	Files   []handoff.File // retrieved fds, in manifest order, then owned session fds
	Lost    []Lost         // fds that did not come back
	Owned   []*owned       // the sessions the workload owns (manifest owned_session)
}

// retrieved is everything the restore got back from the kernel.
type retrieved struct {
	Workloads []*Workload
	Record    *manifest.Record // the freeze record, if it came back (see parseRecord)
	// RecordData is the freeze record as it came back, not yet parsed:
	// parsing waits until the workloads are on their way (parseRecord).
	RecordData []byte
	Lost       []Lost // all lost fds, for the log and the state file
}

// Retrieve gets every session and fd the manifest names. A failure is
// isolated to its fd or session and recorded as Lost; the caller logs
// them and still starts the workloads.
func retrieve(dev Device, m *manifest.Manifest, log ulog.Logger, tl *Timeline) *retrieved {
	r := &retrieved{}
	for _, spec := range m.Workloads {
		w := &Workload{Spec: spec}
		r.Workloads = append(r.Workloads, w)
		if !hasFDs(spec) {
			continue
		}
		s, err := dev.RetrieveSession(spec.FDSession)
		if err != nil {
			w.Lost = lostAll(spec, err)
			r.Lost = append(r.Lost, w.Lost...)
			continue
		}
		w.Session = s
		for _, fd := range spec.FDs {
			if fd.Dropped {
				continue
			}
			f, err := s.RetrieveFD(fd.Token)
			if err != nil {
				l := Lost{spec.Name, fd.Name, spec.FDSession, fd.Token, err}
				w.Lost = append(w.Lost, l)
				r.Lost = append(r.Lost, l)
				continue
			}
			w.Files = append(w.Files, handoff.File{Name: fd.Name, File: f})
		}
		log.Printf("workload %q: session %q retrieved, %d of %d fds", spec.Name, spec.FDSession, len(w.Files), len(w.Files)+len(w.Lost))
	}
	tl.Mark(PhaseFDsRetrieved)
	// Owned sessions after luoinit's own fds: they are appended to each
	// workload's handoff files.
	for _, w := range r.Workloads {
		retrieveOwned(dev, w, log)
	}
	return r
}

// lostAll records every preserved fd of spec as lost for err.
func lostAll(spec manifest.Workload, err error) []Lost {
	var out []Lost
	for _, fd := range spec.FDs {
		if !fd.Dropped {
			out = append(out, Lost{spec.Name, fd.Name, spec.FDSession, fd.Token, err})
		}
	}
	return out
}

func hasFDs(w manifest.Workload) bool {
	for _, fd := range w.FDs {
		if !fd.Dropped {
			return true
		}
	}
	return false
}

// parseRecord parses RecordData into Record (nothing if there is none);
// a record that does not parse is logged and left out: only the blackout
// figures need it.
func (r *retrieved) parseRecord(log ulog.Logger) {
	if r.RecordData == nil || r.Record != nil {
		return
	}
	rec, err := manifest.ParseRecord(r.RecordData)
	if err != nil {
		log.Printf("%v", err)
		return
	}
	r.Record = &rec
}

// retrieveRecord gets the freeze record's bytes from luoinit's own
// session s and finishes it: nothing but luoinit uses it.
func retrieveRecord(s Session, log ulog.Logger) []byte {
	defer s.Close()
	f, err := s.RetrieveFD(carry.RecordToken)
	if err != nil {
		log.Printf("freeze record: %v", err)
		return nil
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, 0, manifest.RecordSize))
	if err != nil {
		log.Printf("freeze record: reading: %v", err)
		return nil
	}
	if err := finish(s, 3, log); err != nil {
		log.Printf("freeze record: %v", err)
	}
	return b
}

// finish calls FINISH, retrying a failure: if FINISH fails the kernel
// keeps the resources preserved and allows another try. Each failed try
// is logged, a later success too, so that a FINISH that needed retries is
// seen.
func finish(s Session, tries int, log ulog.Logger) error {
	var err error
	for i := 0; i < tries; i++ {
		if i > 0 {
			wait := time.Duration(i*i) * 10 * time.Millisecond
			log.Printf("session %q: FINISH failed (try %d of %d): %v; trying again in %v", s.Name(), i, tries, err, wait)
			time.Sleep(wait)
		}
		if err = s.Finish(); err == nil {
			if i > 0 {
				log.Printf("session %q: FINISH done at try %d of %d", s.Name(), i+1, tries)
			}
			return nil
		}
		if errors.Is(err, luo.ErrClosed) {
			return err
		}
	}
	return fmt.Errorf("FINISH failed %d times: the kernel keeps session %q, and the files in it stay preserved, so that a live update cannot preserve them again (EBUSY) before the next boot: %w", tries, s.Name(), err)
}
