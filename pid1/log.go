package pid1

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/u-root/uio/ulog"
	"golang.org/x/sys/unix"
)

// kmsg levels (syslog(2)), as the "<N>" prefix of a /dev/kmsg record.
const (
	levelCrit = 2
	levelErr  = 3
	levelInfo = 6
)

const (
	logPrefix = "luoinit: "
	// kmsgRecordMax bounds one write(2) to /dev/kmsg: the kernel refuses
	// a record longer than LOG_LINE_MAX (992 bytes) with EINVAL, so longer
	// lines are cut into several records.
	kmsgRecordMax = 960
	// consoleRetry bounds how long a line waits for a console that does
	// not take it (a serial line held by flow control, a stopped tty):
	// PID 1 drops the line rather than stop.
	consoleRetry = 100 * time.Millisecond
)

// NewLogger returns the logger of luoinit: one line per call. As PID 1
// (pid1 true) each line goes to /dev/kmsg as "<6>luoinit: ..." and to
// /dev/console, written in order by a goroutine of its own (Flush waits
// for it); otherwise to stderr only. It never panics, and a stuck console
// costs a lost line, never a stuck PID 1.
func NewLogger(pid1 bool) ulog.Logger {
	if !pid1 {
		return newLogger(nil, os.Stderr)
	}
	// Both copies on purpose: the kernel rate-limits what userspace writes
	// to /dev/kmsg (10 lines per 5 seconds per open file, unless
	// printk.devkmsg=on), and prints kmsg lines on the console only above
	// the console log level ("quiet" hides them). With loglevel=7 a line
	// shows twice on the console, once with a timestamp.
	//
	// PID 1 usually starts before /dev is mounted, so /dev/kmsg (and
	// /dev/console, when the initramfs has no node for it) is opened when
	// the first line after MountAll is written: until then lines go to the
	// console, or to stderr when there is none. The console is opened
	// non-blocking and written with a bounded retry.
	//
	// The queue: a serial console at 115200 baud takes milliseconds per
	// line, and nothing on the restore path may wait for that. Printf
	// queues the line (up to logQueue lines; past that it waits, so that
	// no line is lost); a line at error level or above first flushes the
	// queue and is then written at once.
	l := newLogger(nil, nil)
	l.openKmsg = func() (io.Writer, error) { return openFD("/dev/kmsg") }
	l.openConsole = func() (io.Writer, error) { return openFD("/dev/console") }
	l.fallback = os.Stderr
	l.startQueue(logQueue)
	return l
}

// logQueue is how many lines PID 1's logger holds before Printf waits.
const logQueue = 4096

// entry is one queued call: a line to write, or a flush request.
type entry struct {
	level int
	msg   string
	done  chan struct{} // a flush: closed once everything before it is written
}

// startQueue makes the logger write from a goroutine of its own.
func (l *logger) startQueue(n int) {
	l.queue = make(chan entry, n)
	go func() {
		for e := range l.queue {
			if e.done != nil {
				close(e.done)
				continue
			}
			l.write(e.level, e.msg)
		}
	}()
}

// flushWait bounds how long Flush waits for the queue: each line already
// bounds its own console write (consoleRetry), so this only matters for a
// queue full of lines for a console that takes none.
const flushWait = 2 * time.Second

// Flush waits until every line logged before it is written, for at most
// flushWait. It does nothing on a logger that writes at once.
func (l *logger) Flush() {
	if l.queue == nil {
		return
	}
	done := make(chan struct{})
	select {
	case l.queue <- entry{done: done}:
	case <-time.After(flushWait):
		return
	}
	select {
	case <-done:
	case <-time.After(flushWait):
	}
}

// Flush writes what log has queued, if it is luoinit's own logger: before
// a reboot, a poweroff or a fatal error, so that the last lines are seen.
func Flush(log ulog.Logger) {
	if l, ok := log.(*logger); ok {
		l.Flush()
	}
}

// newLogger is the seam of the tests: lines go to kmsg (as records with a
// level) when it is not nil, and to console.
func newLogger(kmsg, console io.Writer) *logger {
	return &logger{kmsg: kmsg, console: console}
}

type logger struct {
	mu      sync.Mutex
	kmsg    io.Writer // nil: none yet, see openKmsg
	console io.Writer // nil: none yet, see openConsole and fallback

	// openKmsg and openConsole, when not nil, are tried on each line for
	// as long as their writer is nil.
	openKmsg    func() (io.Writer, error)
	openConsole func() (io.Writer, error)
	fallback    io.Writer // takes the console's lines while it is nil

	queue chan entry // non-nil: lines are written by the goroutine of startQueue
}

func (l *logger) Printf(format string, args ...any) { l.logf(levelInfo, format, args...) }

func (l *logger) logf(level int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...) // recovers from panics in args' String methods
	if l.queue != nil {
		if level > levelErr {
			l.queue <- entry{level: level, msg: msg}
			return
		}
		// An error goes out now, after what came before it.
		l.Flush()
	}
	l.write(level, msg)
}

// write writes one message at once.
func (l *logger) write(level int, msg string) {
	defer func() { _ = recover() }() // a panicking writer costs the line, nothing more
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.kmsg == nil && l.openKmsg != nil {
		if w, err := l.openKmsg(); err == nil {
			l.kmsg = w
		}
	}
	if l.console == nil && l.openConsole != nil {
		if w, err := l.openConsole(); err == nil {
			l.console = w
		}
	}
	console := l.console
	if console == nil {
		console = l.fallback
	}
	for _, line := range strings.Split(strings.TrimRight(msg, "\n"), "\n") {
		if l.kmsg != nil {
			for _, rec := range kmsgRecords(level, line) {
				_, _ = io.WriteString(l.kmsg, rec)
			}
		}
		if console != nil {
			_, _ = io.WriteString(console, logPrefix+line+"\n")
		}
	}
}

// kmsgRecords cuts one line into /dev/kmsg records of at most
// kmsgRecordMax bytes, each "<level>luoinit: ...\n", cutting between
// UTF-8 characters.
func kmsgRecords(level int, line string) []string {
	head := fmt.Sprintf("<%d>%s", level, logPrefix)
	room := kmsgRecordMax - len(head) - 1
	var recs []string
	for {
		if len(line) <= room {
			return append(recs, head+line+"\n")
		}
		cut := room
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		if cut == 0 {
			cut = room
		}
		recs = append(recs, head+line[:cut]+"\n")
		line = line[cut:]
	}
}

// logAt logs at a kmsg level when log is luoinit's own logger, and with
// Printf otherwise.
func logAt(log ulog.Logger, level int, format string, args ...any) {
	if l, ok := log.(*logger); ok {
		l.logf(level, format, args...)
		return
	}
	log.Printf(format, args...)
}

// orDiscard makes a nil logger safe to call.
func orDiscard(log ulog.Logger) ulog.Logger {
	if log == nil {
		return ulog.Null
	}
	return log
}

// fdWriter writes to a raw non-blocking fd. It is not an *os.File on
// purpose: an *os.File of a non-blocking tty is handed to the Go poller,
// which waits for the tty as long as it takes.
type fdWriter int

// openFD opens path for writing, non-blocking, close-on-exec and without
// making it PID 1's controlling terminal. The fd is never closed: the
// logger lives as long as PID 1.
func openFD(path string) (io.Writer, error) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, syscallErr(err, "open(%q, O_WRONLY|O_NOCTTY|O_NONBLOCK|O_CLOEXEC)", path)
	}
	return fdWriter(fd), nil
}

func (w fdWriter) Write(p []byte) (int, error) {
	n := 0
	deadline := time.Now().Add(consoleRetry)
	for n < len(p) {
		m, err := unix.Write(int(w), p[n:])
		if m > 0 {
			n += m
		}
		switch {
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			if time.Now().After(deadline) {
				return n, syscallErr(err, "write(%d)", int(w))
			}
			time.Sleep(5 * time.Millisecond)
		case err != nil:
			return n, syscallErr(err, "write(%d)", int(w))
		case m == 0:
			return n, io.ErrShortWrite
		}
	}
	return n, nil
}
