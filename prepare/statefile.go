package prepare

import (
	"errors"
	"os"

	"github.com/luoinit/luoinit/status"
)

// stateSave is the state file as it was before prepare changed it, so that
// a cancel can put it back.
type stateSave struct {
	dir  string
	prev *status.Status // nil: there was no state file
}

func (p *stateSave) was() string {
	if p.prev == nil {
		return "no state file"
	}
	return string(p.prev.State)
}

func (p *stateSave) restore() error {
	if p.prev == nil {
		err := os.Remove(status.Path(p.dir))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	return status.Write(p.dir, p.prev)
}

// setState moves the state file to state (prepared, frozen), keeping the
// rest of it; the first change saves what was there for a cancel. A state
// file that cannot be written is logged: it reports, it does not decide.
func (s *state) setState(state status.State) {
	dir := s.o.StateDir
	if s.prevState == nil {
		prev, err := status.Read(dir)
		switch {
		case errors.Is(err, os.ErrNotExist):
			prev = nil
		case err != nil:
			s.log.Printf("state file: %v (it will be replaced)", err)
			prev = nil
		}
		s.prevState = &stateSave{dir: dir, prev: prev}
	}
	st := &status.Status{Boot: status.BootNormal}
	if p := s.prevState.prev; p != nil {
		cp := *p
		st = &cp
	}
	st.State = state
	if err := status.Write(dir, st); err != nil {
		s.log.Printf("%v", err)
	}
}
