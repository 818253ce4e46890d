package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// server serves the line protocol over a store.
type server struct {
	st            *Store
	arena         *os.File // the memfd the store is in
	workload      string
	prepareSocket string
	timeout       time.Duration // of a push
	log           *log.Logger

	mu       sync.Mutex
	ln       net.Listener
	conns    map[net.Conn]struct{}
	nconns   int // connections accepted
	closing  bool
	wg       sync.WaitGroup // connections and pushes under way
	pushMu   sync.Mutex
	pushedAt time.Time
	fullSeen atomic.Bool
}

func newServer(st *Store, arena *os.File, workload, prepareSocket string, timeout time.Duration, logger *log.Logger) *server {
	return &server{st: st, arena: arena, workload: workload, prepareSocket: prepareSocket, timeout: timeout, log: logger, conns: map[net.Conn]struct{}{}}
}

// listenUnix listens on a unix stream socket at path. A socket file that
// nobody serves is removed first; anything else at path is an error.
func listenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket; not removing it", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is in use: another process serves it", path)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("checking whether the socket %s is stale: %w", path, err)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("removing the stale socket %s: %w", path, err)
		}
	}
	return net.Listen("unix", path)
}

// serve accepts connections on ln until shutdown. It returns nil after
// shutdown, else the error that stopped it.
func (s *server) serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.ln = ln
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return nil
			}
			return err
		}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.nconns++
		go s.handle(c, s.nconns)
	}
}

// handle answers the requests of one connection, in order. Answers are
// sent when no further whole request is waiting, so that a client may send
// many requests before it reads.
func (s *server) handle(c net.Conn, id int) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	r := bufio.NewReaderSize(c, maxLine)
	w := bufio.NewWriter(c)
	for {
		// Answer what is answered before waiting for more requests.
		if w.Buffered() > 0 {
			if buf, _ := r.Peek(r.Buffered()); bytes.IndexByte(buf, '\n') < 0 {
				if err := w.Flush(); err != nil {
					return
				}
			}
		}
		line, err := r.ReadSlice('\n')
		last := false
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = r.ReadSlice('\n')
			}
			if err != nil {
				return
			}
			line, err = nil, errLineTooLong
		case errors.Is(err, io.EOF) && len(line) > 0:
			// A last request without its newline: answer it, then close.
			last, err = true, nil
		case err != nil:
			// A client that went away (EOF, reset) or a shutdown is no
			// news; anything else is.
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, syscall.ECONNRESET) {
				s.log.Printf("connection %d: reading a request: %v", id, err)
			}
			return
		default:
			line = line[:len(line)-1]
		}
		answer, quit := "", false
		if err == nil {
			var req Request
			if req, err = ParseRequest(line); err == nil {
				answer, quit = s.exec(req)
			}
		}
		if err != nil {
			answer = "ERR " + err.Error()
		}
		w.WriteString(answer)
		w.WriteByte('\n')
		if quit || last {
			w.Flush()
			return
		}
	}
}

// exec carries out one request and returns the answer line (without the
// newline) and whether to close the connection.
func (s *server) exec(req Request) (string, bool) {
	switch req.Op {
	case OpSet:
		if err := s.st.Set(req.Key, req.Value); err != nil {
			if errors.Is(err, ErrArenaFull) && !s.fullSeen.Swap(true) {
				s.log.Printf("the arena is full; refusing writes from now on (first refused: %v)", err)
			}
			return "ERR " + err.Error(), false
		}
		return "OK", false
	case OpGet:
		v, ok := s.st.Get(req.Key)
		if !ok {
			return "NOTFOUND", false
		}
		if len(v) == 0 || badByte(v) >= 0 {
			return fmt.Sprintf("ERR the value of key %q cannot be carried by the line protocol", req.Key), false
		}
		return "VALUE " + v, false
	case OpDel:
		ok, err := s.st.Delete(req.Key)
		switch {
		case err != nil:
			if errors.Is(err, ErrArenaFull) && !s.fullSeen.Swap(true) {
				s.log.Printf("the arena is full; refusing writes from now on (first refused: %v)", err)
			}
			return "ERR " + err.Error(), false
		case !ok:
			return "NOTFOUND", false
		}
		return "OK", false
	case OpCount:
		return "COUNT " + strconv.Itoa(s.st.Count()), false
	case OpStats:
		return formatStats(s.st.Stats()), false
	case OpPush:
		if err := s.push("PUSH request"); err != nil {
			return "ERR push: " + err.Error(), false
		}
		return fmt.Sprintf("OK pushed %q to %s as workload %q", arenaName, s.prepareSocket, s.workload), false
	case OpQuit:
		return "OK", true
	}
	return fmt.Sprintf("ERR unknown request %v", req.Op), false
}

// formatStats is the answer to STATS.
func formatStats(st Stats) string {
	return fmt.Sprintf("STATS entries=%d used=%d size=%d restored=%t generation=%d", st.Entries, st.Used, st.Size, st.Restored, st.Generation)
}

// push gives the arena to luoinit prepare and logs the outcome; trigger
// says what asked for it. One push at a time.
func (s *server) push(trigger string) error {
	s.pushMu.Lock()
	defer s.pushMu.Unlock()
	st := s.st.Stats()
	start := time.Now()
	if err := pushArena(s.arena, s.prepareSocket, s.workload, s.timeout); err != nil {
		s.log.Printf("push (%s): handing %q to luoinit prepare at %s as workload %q failed: %v", trigger, arenaName, s.prepareSocket, s.workload, err)
		return err
	}
	s.mu.Lock()
	s.pushedAt = time.Now()
	s.mu.Unlock()
	s.log.Printf("push (%s): handed %q (%s, %d entries, %d bytes used) to luoinit prepare at %s as workload %q in %v",
		trigger, arenaName, sizeString(st.Size), st.Entries, st.Used, s.prepareSocket, s.workload, time.Since(start).Round(time.Microsecond))
	return nil
}

// pushAsync pushes in the background (for SIGUSR1); shutdown waits for it.
func (s *server) pushAsync(trigger string) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		s.push(trigger)
	}()
}

// shutdown stops serving, closes every connection, waits up to wait for
// the requests and pushes under way, and releases the arena: this process
// drops its reference to the memfd, which luoinit keeps if it was pushed.
func (s *server) shutdown(wait time.Duration) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.closing = true
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(wait):
		s.log.Printf("requests or a push still under way after %v; stopping anyway", wait)
	}
	st := s.st.Stats()
	s.st.Close()
	s.arena.Close()
	s.mu.Lock()
	pushedAt := s.pushedAt
	s.mu.Unlock()
	if pushedAt.IsZero() {
		s.log.Printf("stopped with %d entries; the arena was not pushed to luoinit, so its contents end with this process", st.Entries)
	} else {
		s.log.Printf("stopped with %d entries; the arena was pushed to luoinit prepare at %s", st.Entries, pushedAt.Format("15:04:05.000"))
	}
}
