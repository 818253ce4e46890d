package prepare

import (
	"fmt"
	"sync"
	"time"

	"github.com/luoinit/luoinit/handoff"
	"github.com/luoinit/luoinit/proctree"
	"github.com/u-root/uio/ulog"
)

// connTimeout is how long one connection to the push socket has for its
// HELLO and its fds, and then for its answer to be taken; luoinit's own
// work in between (preserving) is not counted. Each connection has its
// own, so a silent one delays no other.
const connTimeout = 10 * time.Second

// maxConnsPerUID bounds the connections of one user being served at once,
// beyond one for each of the user's workloads waited for (capOf): the
// socket is open to every user (its gate is the credential check), and a
// user who opens many silent connections only uses up its own share,
// while a hundred workloads of one user can all push at once.
const maxConnsPerUID = 16

// push is one workload's complete transfer, waiting for its ACK: the
// caller preserves the files, answers on conn and closes it.
type push struct {
	conn     *handoff.Conn
	cred     handoff.Cred
	workload string
	files    []handoff.File
}

// pushServer accepts connections on the push socket and reads each one's
// HELLO and fds in a goroutine of its own, under its own deadline; whole
// transfers come out of pushes one at a time, so that preserving (which
// needs the one open /dev/liveupdate) stays serial.
type pushServer struct {
	l         *handoff.Listener
	uids      map[string]uint32 // workloads waited for → the uid each runs as
	pids      map[string]int    // each workload's process, when PID 1 answers; nil standalone
	timeout   time.Duration
	log       ulog.Logger
	pushes    chan *push
	acceptErr chan error
	done      chan struct{}

	mu     sync.Mutex
	conns  map[*handoff.Conn]bool // being served, closed by stop
	perUID map[uint32]int
	wg     sync.WaitGroup
}

// servePushes starts serving l for the workloads in uids; with pids (PID
// 1 answers), only a workload's own process tree may push for it. stop
// ends it.
func servePushes(l *handoff.Listener, uids map[string]uint32, pids map[string]int, timeout time.Duration, log ulog.Logger) *pushServer {
	p := &pushServer{
		l: l, uids: uids, pids: pids, timeout: timeout, log: log,
		pushes:    make(chan *push),
		acceptErr: make(chan error, 1),
		done:      make(chan struct{}),
		conns:     map[*handoff.Conn]bool{},
		perUID:    map[uint32]int{},
	}
	p.wg.Add(1)
	go p.accept()
	return p
}

// stop closes the listener and every connection still being served, and
// waits for their goroutines: nothing received stays open behind it.
func (p *pushServer) stop() {
	close(p.done)
	p.l.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *pushServer) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			select {
			case <-p.done:
			default:
				p.acceptErr <- err
			}
			return
		}
		cred, err := c.Peer()
		if err != nil {
			p.log.Printf("push socket: %v (connection closed)", err)
			c.Close()
			continue
		}
		if !p.track(c, cred.UID) {
			msg := fmt.Sprintf("uid %d has %d connections open to the push socket already", cred.UID, p.capOf(cred.UID))
			c.SendError(msg)
			c.Close()
			p.log.Printf("connection from pid %d: %s (refused)", cred.PID, msg)
			continue
		}
		p.wg.Add(1)
		go p.receive(c, cred)
	}
}

// track counts c against its user's share, or refuses it.
func (p *pushServer) track(c *handoff.Conn, uid uint32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		return false
	default:
	}
	if p.perUID[uid] >= p.capOf(uid) {
		return false
	}
	p.perUID[uid]++
	p.conns[c] = true
	return true
}

// capOf is how many connections of uid are served at once: one for each
// of its workloads waited for, and maxConnsPerUID more.
func (p *pushServer) capOf(uid uint32) int {
	n := maxConnsPerUID
	for _, u := range p.uids {
		if u == uid {
			n++
		}
	}
	return n
}

func (p *pushServer) untrack(c *handoff.Conn, uid uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.perUID[uid]--
	delete(p.conns, c)
}

// receive reads one connection's HELLO and fds. A stranger, a protocol
// error or a timeout is answered (by handoff, or here) and logged; a
// complete transfer goes to pushes with the connection still open.
func (p *pushServer) receive(c *handoff.Conn, cred handoff.Cred) {
	defer p.wg.Done()
	handed := false
	defer func() {
		if !handed {
			c.Close()
		}
		p.untrack(c, cred.UID)
	}()
	c.SetDeadline(time.Now().Add(p.timeout))
	h, err := c.ReadHello()
	if err != nil {
		if !p.stopping() {
			p.log.Printf("connection from pid %d: %v (ignored)", cred.PID, err)
		}
		return
	}
	uid, ok := p.uids[h.Workload]
	if !ok || h.Direction != handoff.DirectionPush {
		msg := fmt.Sprintf("workload %q is not waited for (not in the config, not in socket mode, or without fds), or this is not a push", h.Workload)
		c.SendError(msg)
		p.log.Printf("connection from pid %d: %s (ignored)", cred.PID, msg)
		return
	}
	// Only the workload's own user (or root) may speak for it: another
	// local process must not get its fds preserved, nor have it stopped
	// by the freeze.
	if cred.UID != 0 && cred.UID != uid {
		msg := fmt.Sprintf("workload %q runs as uid %d, the connection is from uid %d (pid %d)", h.Workload, uid, cred.UID, cred.PID)
		c.SendError(msg)
		p.log.Printf("%s (ignored)", msg)
		return
	}
	if msg := p.stranger(h.Workload, cred.PID); msg != "" {
		c.SendError(msg)
		p.log.Printf("%s (ignored)", msg)
		return
	}
	files, err := c.ReceiveFiles()
	if err != nil {
		if p.stopping() {
			return
		}
		// Tell the workload, so that it fails now instead of timing out.
		c.SendAck(handoff.FDOf(err), err)
		p.log.Printf("workload %q (pid %d): receiving fds: %v (waiting for it to try again)", h.Workload, cred.PID, err)
		return
	}
	select {
	case p.pushes <- &push{conn: c, cred: cred, workload: h.Workload, files: files}:
		handed = true
	case <-p.done:
		closeFiles(files)
	}
}

// stranger says why pid may not push for workload, "" if it may. When
// PID 1 answers the prepare it knows each workload's process, and only
// that process or one below it speaks for the workload: the rule of its
// notification socket. Standalone, the uid rule is all there is.
func (p *pushServer) stranger(workload string, pid int) string {
	if p.pids == nil {
		return ""
	}
	wpid, ok := p.pids[workload]
	switch {
	case !ok || wpid <= 0:
		return fmt.Sprintf("workload %q is not running under PID 1; the connection is from pid %d", workload, pid)
	case !proctree.Descendant(pid, wpid):
		return fmt.Sprintf("workload %q is pid %d; the connection is from pid %d, which is not in its process tree", workload, wpid, pid)
	}
	return ""
}

// stopping reports whether stop was called: connections it closed are not
// worth a log line.
func (p *pushServer) stopping() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func closeFiles(files []handoff.File) {
	for _, f := range files {
		f.File.Close()
	}
}
