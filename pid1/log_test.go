package pid1

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/u-root/uio/ulog"
	"golang.org/x/sys/unix"
)

func TestLoggerLines(t *testing.T) {
	tests := []struct {
		name        string
		kmsg        bool
		msg         string
		args        []any
		wantKmsg    string
		wantConsole string
	}{
		{
			name: "PID 1: kmsg with a level, and the console",
			kmsg: true, msg: "workload %q started", args: []any{"kv"},
			wantKmsg:    "<6>luoinit: workload \"kv\" started\n",
			wantConsole: "luoinit: workload \"kv\" started\n",
		},
		{
			name: "not PID 1: the console alone",
			msg:  "hello", wantConsole: "luoinit: hello\n",
		},
		{
			name: "a trailing newline is not an empty line",
			kmsg: true, msg: "hello\n",
			wantKmsg: "<6>luoinit: hello\n", wantConsole: "luoinit: hello\n",
		},
		{
			name: "one record and one console line per line",
			kmsg: true, msg: "panic: boom\n\ngoroutine 1",
			wantKmsg:    "<6>luoinit: panic: boom\n<6>luoinit: \n<6>luoinit: goroutine 1\n",
			wantConsole: "luoinit: panic: boom\nluoinit: \nluoinit: goroutine 1\n",
		},
		{
			name: "bad verbs do not panic",
			msg:  "%d %s", args: []any{"x"},
			wantConsole: "luoinit: %!d(string=x) %!s(MISSING)\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var kmsg, console bytes.Buffer
			l := newLogger(nil, &console)
			if tc.kmsg {
				l = newLogger(&kmsg, &console)
			}
			l.Printf(tc.msg, tc.args...)
			if kmsg.String() != tc.wantKmsg {
				t.Errorf("kmsg %q, want %q", kmsg.String(), tc.wantKmsg)
			}
			if console.String() != tc.wantConsole {
				t.Errorf("console %q, want %q", console.String(), tc.wantConsole)
			}
		})
	}
}

func TestLogAtLevels(t *testing.T) {
	tests := []struct {
		log  func(ulog.Logger)
		want string
	}{
		{func(l ulog.Logger) { l.Printf("x") }, "<6>luoinit: x\n"},
		{func(l ulog.Logger) { logAt(l, levelErr, "x") }, "<3>luoinit: x\n"},
		{func(l ulog.Logger) { logAt(l, levelCrit, "x") }, "<2>luoinit: x\n"},
	}
	for _, tc := range tests {
		var kmsg bytes.Buffer
		tc.log(newLogger(&kmsg, io.Discard))
		if kmsg.String() != tc.want {
			t.Errorf("kmsg %q, want %q", kmsg.String(), tc.want)
		}
	}
	// Any other Logger gets Printf.
	rec := &recLogger{}
	logAt(rec, levelCrit, "y %d", 1)
	if rec.text() != "y 1" {
		t.Errorf("logAt on a plain Logger: %q", rec.text())
	}
}

// recordWriter keeps each write apart: /dev/kmsg takes one record a write.
type recordWriter struct{ writes []string }

func (w *recordWriter) Write(p []byte) (int, error) {
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

func TestLoggerLongLine(t *testing.T) {
	tests := []struct {
		name string
		line string
	}{
		{"ascii", strings.Repeat("abcdefghij", 300)},
		{"multibyte at every cut", strings.Repeat("é", 2000)},
		{"exactly one record", strings.Repeat("x", kmsgRecordMax-len("<6>luoinit: \n"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var kmsg recordWriter
			newLogger(&kmsg, io.Discard).Printf("%s", tc.line)
			var joined strings.Builder
			for _, rec := range kmsg.writes {
				if len(rec) > kmsgRecordMax {
					t.Errorf("record of %d bytes, max %d", len(rec), kmsgRecordMax)
				}
				body, ok := strings.CutPrefix(rec, "<6>luoinit: ")
				if !ok || !strings.HasSuffix(body, "\n") {
					t.Fatalf("record %q", rec)
				}
				joined.WriteString(strings.TrimSuffix(body, "\n"))
			}
			if joined.String() != tc.line {
				t.Errorf("records do not add up to the line")
			}
			if want := (len(tc.line) + 946) / 947; len(kmsg.writes) < want {
				t.Errorf("%d records, want at least %d", len(kmsg.writes), want)
			}
			if !strings.Contains(tc.line, "é") {
				return
			}
			for _, rec := range kmsg.writes {
				if !strings.HasSuffix(rec, "é\n") {
					t.Errorf("record cut inside a character: ...%q", rec[len(rec)-4:])
				}
			}
		})
	}
}

// TestLoggerOpensLate is PID 1 before /dev is mounted: kmsg and the console
// cannot be opened yet, lines go to the fallback, and both are used once
// they can be opened.
func TestLoggerOpensLate(t *testing.T) {
	var kmsg, console, fallback bytes.Buffer
	devUp := false
	l := newLogger(nil, nil)
	l.openKmsg = func() (io.Writer, error) {
		if !devUp {
			return nil, unix.ENOENT
		}
		return &kmsg, nil
	}
	l.openConsole = func() (io.Writer, error) {
		if !devUp {
			return nil, unix.ENOENT
		}
		return &console, nil
	}
	l.fallback = &fallback
	l.Printf("before")
	devUp = true
	l.Printf("after")
	if got, want := fallback.String(), "luoinit: before\n"; got != want {
		t.Errorf("fallback %q, want %q", got, want)
	}
	if got, want := kmsg.String(), "<6>luoinit: after\n"; got != want {
		t.Errorf("kmsg %q, want %q", got, want)
	}
	if got, want := console.String(), "luoinit: after\n"; got != want {
		t.Errorf("console %q, want %q", got, want)
	}
}

type panicWriter struct{}

func (panicWriter) Write([]byte) (int, error) { panic("writer") }

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errors.New("broken") }

func TestLoggerNeverPanics(t *testing.T) {
	var console bytes.Buffer
	for _, l := range []ulog.Logger{
		newLogger(panicWriter{}, &console),
		newLogger(errWriter{}, &console),
		newLogger(errWriter{}, errWriter{}),
		orDiscard(nil),
	} {
		l.Printf("line %d", 1)
		l.Printf("line %d", 2) // the mutex was released
	}
}

// TestLoggerNeverBlocks writes to a console that takes nothing (a full
// pipe): each line must give up after consoleRetry.
func TestLoggerNeverBlocks(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	chunk := make([]byte, 4096)
	for {
		if _, err := unix.Write(p[1], chunk); err == unix.EAGAIN {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	l := newLogger(nil, fdWriter(p[1]))
	done := make(chan struct{})
	start := time.Now()
	go func() {
		l.Printf("first")
		l.Printf("second")
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Printf blocked on a full console")
	}
	if d := time.Since(start); d < 2*consoleRetry {
		t.Errorf("gave up after %v, want about %v a line", d, consoleRetry)
	}
}

func TestNewLoggerNotPID1(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	saved := os.Stderr
	os.Stderr = w
	l := NewLogger(false)
	os.Stderr = saved
	l.Printf("to stderr %d", 2)
	w.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "luoinit: to stderr 2\n"; got != want {
		t.Errorf("stderr %q, want %q", got, want)
	}
}

// gateWriter blocks every write until the gate is opened, like a slow
// serial console, and records what was written.
type gateWriter struct {
	gate chan struct{}
	mu   chan struct{}
	buf  bytes.Buffer
}

func newGateWriter() *gateWriter {
	return &gateWriter{gate: make(chan struct{}), mu: make(chan struct{}, 1)}
}

func (g *gateWriter) Write(p []byte) (int, error) {
	<-g.gate
	g.mu <- struct{}{}
	defer func() { <-g.mu }()
	return g.buf.Write(p)
}

func (g *gateWriter) text() string {
	g.mu <- struct{}{}
	defer func() { <-g.mu }()
	return g.buf.String()
}

// TestLoggerQueue: as PID 1, Printf does not wait for a console that is
// slow; lines come out in order; an error line flushes what came before
// it; Flush waits until every queued line is written.
func TestLoggerQueue(t *testing.T) {
	console := newGateWriter()
	l := newLogger(nil, console)
	l.startQueue(16)
	returned := make(chan struct{})
	go func() {
		for i := 0; i < 10; i++ {
			l.Printf("line %d", i)
		}
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("Printf waited for the console")
	}
	if got := console.text(); got != "" {
		t.Fatalf("written before the console took anything: %q", got)
	}
	close(console.gate)
	logAt(l, levelErr, "failure")
	var want strings.Builder
	for i := 0; i < 10; i++ {
		want.WriteString("luoinit: line " + string(rune('0'+i)) + "\n")
	}
	want.WriteString("luoinit: failure\n")
	if got := console.text(); got != want.String() {
		t.Fatalf("after an error line: %q, want %q", got, want.String())
	}
	l.Printf("last")
	Flush(l)
	if got := console.text(); !strings.HasSuffix(got, "luoinit: last\n") {
		t.Fatalf("Flush returned before the last line was written: %q", got)
	}
}
